"""emotive: scaled, emotionally expressive generative speech and motion models in JAX."""

__version__ = "0.1.0"


def load(path, **options):
    """The predictor of a release bundle or a training run, whatever its family, in one line.

        ser = emotive.load("releases/ser-judge")          # EmotionPredictor: .predict(audio)
        asr = emotive.load("runs/asr-base")              # Recognizer: .transcribe(audio)
        tts = emotive.load("releases/tts", codec="releases/codec")   # TTSPipeline
        tts = emotive.load("releases/tts-small")         # a TTS bundle holding codec/
        waves = tts.synthesize("Hello there.", emotion="happy")

    The family comes from the bundle's config.json (or the run's saved config) and the
    predictor from emotive.registry (`load_predictor`); a bundle's files are checked against
    its SHA256SUMS and its tensors against the model before use. A TTS model with a codec
    (`codec=`, or a codec/ bundle inside the TTS bundle) is an
    emotive.infer.tts.TTSPipeline(lm, codec); without one, the TTSModel alone. Other
    options go to the predictor's `load` (e.g. `ser=` for a motion_ldm run).
    """
    import json
    import pathlib

    from emotive import registry
    from emotive.infer import bundle

    path = pathlib.Path(path)
    if bundle.is_bundle(path):
        try:
            task = json.loads((path / bundle.CONFIG_FILE).read_text()).get("task")
        except (OSError, ValueError, AttributeError):
            task = None  # the predictor's load verifies the bundle and says what is wrong
    else:
        from emotive.train.checkpoint import latest_step_dir, read_config

        task = read_config(latest_step_dir(path.absolute())).get("task")
    if task == "tts":
        from emotive.infer import tts

        codec = options.pop("codec", None)
        if options:
            raise TypeError(f"unexpected options for a TTS model: {sorted(options)}")
        if codec is not None or (path / "codec").is_dir():
            return tts.load_pipeline(path, codec)
        return registry.load_predictor("tts", path)
    if task not in registry.FAMILIES:
        from emotive.errors import UserError

        if bundle.is_bundle(path):
            bundle.verify_bundle(path)  # a damaged bundle says which file is wrong
        raise UserError(f"{path} holds a {task!r} model, which is no emotive family")
    if options:
        return registry.predictor_class(task).load(path, (task,), **options)
    return registry.load_predictor(task, path)
