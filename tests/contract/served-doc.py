"""openapi.yaml as one running binary serves it, for Schemathesis.

usage: served-doc.py OPENAPI_YAML FILTER_NAME... > served.json

Two differences from the published document, both the deployment's and not the binary's: the API
key belongs to API Gateway (the binary behind it never sees one), so the security requirement
goes; and `filter` takes exactly the filter names this binary was started with.
"""

import json
import sys

import yaml

path, filters = sys.argv[1], sys.argv[2:]
with open(path, encoding="utf-8") as f:
    doc = yaml.safe_load(f)
doc.pop("security", None)
doc["components"].pop("securitySchemes", None)
doc["components"]["parameters"]["Filter"]["schema"] = {"enum": [*filters, ""]}
json.dump(doc, sys.stdout, ensure_ascii=False)
