import os
import sys

from django.shortcuts import render


def index(request):
    return render(
        request,
        "index.html",
        {
            "dyno": os.environ.get("DYNO", "?"),
            "python": "%d.%d.%d" % sys.version_info[:3],
        },
    )
