# One image for the API and the workers; the GPU worker's image swaps in faiss-gpu (build arg FAISS).
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

# faiss-gpu and faiss-cpu provide the same module: the GPU image swaps one for the other.
ARG FAISS=faiss-cpu
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 \
 && pip install --no-cache-dir . \
 && if [ "$FAISS" != "faiss-cpu" ]; then pip uninstall -y faiss-cpu && pip install --no-cache-dir "$FAISS"; fi

RUN useradd --create-home clipgate && mkdir -p /data && chown clipgate /data
USER clipgate
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["clipgate"]
CMD ["serve", "--host", "0.0.0.0"]
