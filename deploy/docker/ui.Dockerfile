# The Streamlit UI (ui/app.py) in its own small image: Python and Streamlit, no Credito
# program. Build from the repository root (needs PyPI):
#
#   docker build -f deploy/docker/ui.Dockerfile -t credito-ui:local .
#
# Settings come from the environment, CREDITO_GATEWAY_URL and CREDITO_API_KEY (docker-compose.yml
# sets them), or from a secrets file mounted at /app/.streamlit/secrets.toml (gateway_url,
# api_key), which the app reads first. No secrets file is ever copied into the image
# (.dockerignore).
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY ui/requirements.txt ./requirements.txt
RUN pip install --no-cache-dir -r requirements.txt \
 && useradd --system --uid 10001 --user-group --home-dir /home/credito --create-home \
      --shell /usr/sbin/nologin credito
COPY ui/ ./
USER 10001:10001
EXPOSE 8501
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", \
       "import urllib.request as u; u.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=3)"]
ENTRYPOINT ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501", \
            "--server.headless=true", "--browser.gatherUsageStats=false"]
