# One image for every orderflow service (worker, API, carrier simulator); compose picks the command.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH \
    ORDERFLOW_STATE_DIR=/var/lib/orderflow

# The invoice PDFs' font (Chinese glyphs; services/billing/invoice_document.py): the slim image has no fonts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

RUN pip install --no-cache-dir uv \
    && useradd --system --uid 10001 --home-dir /var/lib/orderflow --create-home orderflow

WORKDIR /app

# Dependencies first: this layer survives code-only changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
RUN uv sync --frozen --no-dev

USER orderflow
CMD ["python", "worker.py"]
