"""Motion representations and file formats (speech-driven motion, issue 19 part 1).

    from emotive.codecs.motion import bvh, kinematics, rotations, smplx_npz
    from emotive.codecs.motion.skeleton import SMPLX
    clip = smplx_npz.read_smplx_npz("take.npz", expect_fps=30)      # BEAT2 / AMASS SMPL-X
    d6_Tx55x6 = rotations.axis_angle_to_rotation_6d(clip.poses)     # what models learn
    pos_Tx55x3, _ = kinematics.forward_kinematics(
        rotations.axis_angle_to_matrix(clip.poses), clip.trans, SMPLX)
    bvh.write_bvh("take.bvh", clip.to_motion())                     # depth-first joint order

Modules:
    skeleton.py    Skeleton (names, parents, offsets); SMPLX, the 55-joint SMPL-X body
    rotations.py   axis-angle, matrices, 6D, quaternions, Euler (numpy or JAX, batched, jittable)
    kinematics.py  forward kinematics in JAX, joint speeds
    clip.py        Motion (skeleton + root positions + local rotation matrices + fps),
                   resampling, and the checks every reader shares (check_sync for audio)
    face.py        ARKit-52 names, FaceWeights, FLAME expression + jaw, a linear jaw map
    bvh.py         BVH read/write; the 75-joint BEAT skeleton (120 fps)
    smplx_npz.py   BEAT2 / AMASS SMPL-X npz read/write (poses T x 165, trans, betas, ...)
    face_io.py     ARKit CSV (Live Link Face or plain) and BEAT face JSON read/write
"""
