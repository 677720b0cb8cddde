import sys

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def index():
    return {"message": "Hello from uv-fastapi", "python": "%d.%d.%d" % sys.version_info[:3]}
