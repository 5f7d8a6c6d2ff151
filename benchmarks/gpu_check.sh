#!/usr/bin/env bash
# One call on a lent GPU machine (see DEVELOPERS.md): the `gpu` tests, then the GPU benchmarks.
# That machine has torch, transformers, numpy, scikit-learn, sacrebleu, httpx, pytest, but not spaCy,
# gensim, FastAPI or pydantic. Generation never imports gensim/spaCy; the service needs these wheels
# (about 3 MB; the `device` run carries ".whl" and this script installs them):
#   ../shared/tools/device-wheels fastapi==0.165.0 starlette==1.10.0 pydantic==2.14.4 pydantic-core==2.50.5 \
#     pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5 annotated-types==0.8.0 \
#     annotated-doc==0.0.7 opentelemetry-api==1.45.2 uvicorn==0.54.0 typer==0.29.2 typing-extensions==4.16.0
# Checked on CPU with gensim, spaCy, scikit-learn and scipy made unimportable: the app loads gpt2-es
# and answers /v1/generate.
# Results land in $OUT (or ./bench-out when run elsewhere).
set -u
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  rm -rf /tmp/site && python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee -a "$OUT/gpu.txt"
# --noconftest: the shared fixtures import gensim, which GPU hosts do not carry. The translation test
# also needs sacrebleu (carry its wheels: sacrebleu portalocker tabulate colorama lxml).
timeout 200 python3 -m pytest -q -m gpu --noconftest -p no:cacheprovider tests/test_generate_engine.py \
  tests/test_translate.py tests/test_classify.py 2>&1 | tee "$OUT/gpu-tests.txt" | tail -15
# Generation: GPT-2 124M fp16, 1/16/64/256 streams, engine vs transformers generate, and over HTTP.
timeout 300 python3 benchmarks/generation.py --streams 1 16 64 256 --http --out "$OUT/generation-gpu.json" \
  2> "$OUT/generation-gpu.log" | tail -c 2000
tail -8 "$OUT/generation-gpu.log"
[ "${SKIP_CLASSIFY:-1}" = 1 ] && exit 0
timeout 330 python3 benchmarks/classify.py --sections throughput --device cuda --http-requests 1000 --http-max-seconds 60 --out "$OUT/classify-gpu.json" \
  2> "$OUT/classify-gpu.log" | tail -c 3000
tail -5 "$OUT/classify-gpu.log"
