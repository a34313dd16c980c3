"""Browsable API docs rendered on the server from the OpenAPI document (no CDN: tills are offline)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template

api_docs = Blueprint("api_docs", __name__, template_folder="templates")


@api_docs.route("/api/v1/docs")
def docs():
    spec = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    operations = []
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                operations.append({"method": method.upper(), "path": path, **op})
    return render_template("api_docs.html", spec=spec, operations=operations)
