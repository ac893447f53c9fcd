FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY adapters adapters
COPY domain domain
COPY ingress ingress
COPY workers workers
COPY devstack devstack
COPY templates templates
RUN pip install --no-cache-dir . && useradd --system app
USER app
EXPOSE 5001
CMD ["python", "-m", "ingress"]
