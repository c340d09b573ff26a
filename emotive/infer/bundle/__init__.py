"""Release bundles: a self-verifying folder of safetensors, config.json and a model card.

    verify_bundle("releases/ser-judge")                 # every file against SHA256SUMS
    cfg, params, rest = read_bundle("releases/ser-judge", task="ser")
    loaded = load_trained("releases/ser-judge", task="ser")   # the same, as a model

A bundle (written by `emotive release`, emotive/hub/release.py) holds

    model.safetensors        parameters ("params/<dotted path>") and non-parameter variables
                             ("rest/<dotted path>": batch-norm statistics, running moments) of
                             the released module; above a size threshold the shards
                             model-0000i-of-0000n.safetensors and model.safetensors.index.json
    config.json              the resolved experiment config (configs.base.to_json), with "task"
    vae/, asr/, speaker/     a motion_ldm bundle's VAE and condition encoders, each a bundle
                             of its own that config.json names relative to the bundle
                             (NESTED_FIELDS; read_config makes them absolute)
    tts_vocab.json, tokenizer.json   a TTS bundle's vocabulary (TTSVocab.save)
    README.md                the model card (Hugging Face YAML front matter)
    SHA256SUMS               `sha256sum` lines for every other file

Reading trusts nothing: every file is hashed against SHA256SUMS before anything is parsed,
the safetensors header is checked by the `safetensors` package (nothing is ever unpickled),
and every tensor must match the abstract model the task builds (name, shape, dtype).

The package, one job a module (this file is only its table of contents; import the names
from here):

    files.py     file names, is_bundle, SHA256SUMS (write_sums, verify_bundle)
    weights.py   safetensors files: dtype codes, shard plan, the streaming writer, the checked
                 reader (SafetensorsFile, open_weights); shared with emotive/hub/hf_files.py
    reading.py   tensor names (flat_keys), the released module, read_config, read_bundle
    info.py      summary and the model card's metadata and metrics (`emotive bundle info`)
"""

from emotive.infer.bundle.files import (CARD_FILE, CONFIG_FILE, IGNORED_DIRS, SUMS_FILE,
                                        is_bundle, verify_bundle, write_sums)
from emotive.infer.bundle.info import (ROLE_TAG, ROLES, bundle_role, card_metadata,
                                       card_metrics, summary)
from emotive.infer.bundle.reading import (NESTED_FIELDS, PARAMS, REST, abstract_parts,
                                          bundle_step, config_class, flat_keys, read_bundle,
                                          read_config, released_module)
from emotive.infer.bundle.weights import (DTYPES, INDEX_FILE, WEIGHTS_FILE, SafetensorsFile,
                                          dtype_code, nbytes, open_weights, plan_shards,
                                          shard_names, weights_metadata, write_safetensors,
                                          write_shards)

__all__ = [
    "CARD_FILE", "CONFIG_FILE", "IGNORED_DIRS", "SUMS_FILE", "is_bundle", "verify_bundle",
    "write_sums", "ROLE_TAG", "ROLES", "bundle_role", "card_metadata", "card_metrics",
    "summary", "NESTED_FIELDS", "PARAMS", "REST", "abstract_parts", "bundle_step",
    "config_class", "flat_keys", "read_bundle", "read_config", "released_module", "DTYPES",
    "INDEX_FILE", "WEIGHTS_FILE", "SafetensorsFile", "dtype_code", "nbytes", "open_weights",
    "plan_shards", "shard_names", "weights_metadata", "write_safetensors", "write_shards"]
