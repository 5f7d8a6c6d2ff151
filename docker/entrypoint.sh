#!/bin/sh
# The images' entrypoint.
#   (no arguments), `serve [OPTIONS]` or `--OPTION ...`: `nlp-service serve [OPTIONS]`, which builds the
#       default models missing from NLP_MODELS_DIR in the background while it serves (the images set
#       NLP_BUILD_DEFAULTS=true; `false` serves only what is there). Default models trained into the image
#       (DEFAULTS=build) are copied into NLP_MODELS_DIR first, when missing there.
#   anything else: `nlp-service ARGS...` (e.g. `docker run IMAGE models`, `... train rnn ...`).
set -eu

if [ "$#" -gt 0 ] && [ "$1" != serve ] && [ "${1#-}" = "$1" ]; then
    exec nlp-service "$@"
fi
[ "${1:-}" = serve ] && shift
models_dir=${NLP_MODELS_DIR:-models}

# The CUDA image sets NLP_EXPECT_GPU=1: say which device the models will use, loudly when it is the CPU.
if [ "${NLP_EXPECT_GPU:-0}" = 1 ] && [ "${NLP_DEVICE:-auto}" != cpu ]; then
    python -c '
import os, sys, torch
device = os.environ.get("NLP_DEVICE", "auto")
if torch.cuda.is_available():
    print(f"nlp-service: GPU {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible; torch "
          f"{torch.__version__}, CUDA {torch.version.cuda}); NLP_DEVICE={device}", flush=True)
else:
    print("WARNING: nlp-service: no CUDA GPU is visible in this container "
          f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); the models run on the CPU. "
          "For the GPU: `docker run --gpus all ...` or `docker compose --profile gpu up`, "
          "with the NVIDIA Container Toolkit on the host.", file=sys.stderr, flush=True)
' || true
fi

# Default models trained into the image (DEFAULTS=build): copy those missing, under a temporary name that the
# service removes at start should the copy be cut short.
for dir in /opt/nlp-service/default-models/*/; do
    [ -d "$dir" ] || continue
    name=$(basename "$dir")
    [ -e "$models_dir/$name" ] && continue
    echo "nlp-service: copying the image's default model $name into $models_dir" >&2
    mkdir -p "$models_dir"
    rm -rf "$models_dir/.tmp-$name-image"
    cp -R "$dir" "$models_dir/.tmp-$name-image"
    mv "$models_dir/.tmp-$name-image" "$models_dir/$name"
done

exec nlp-service serve "$@"
