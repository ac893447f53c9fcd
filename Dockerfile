FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY adapters adapters
COPY domain domain
COPY ingress ingress
COPY workers workers
COPY devstack devstack
COPY templates templates
# Editable: the code runs from /app, where the mailer finds templates/ next to the packages.
RUN pip install --no-cache-dir -e . && useradd --system app
USER app
EXPOSE 5001
CMD ["python", "-m", "ingress"]
