"""openapi.yaml as one running binary serves it, for Schemathesis.

usage: served-doc.py OPENAPI_YAML FILTERS RECOMMENDERS PROMOTIONS > served.json
(each a comma-separated list of the names the binary was started with)

Two differences from the published document, both the deployment's and not the binary's: the API
key belongs to API Gateway (the binary behind it never sees one), so the security requirement
goes; and `filter`, `recommender` and `promotion` take exactly the names this binary knows.
"""

import json
import sys

import yaml

path, filters, recommenders, promotions = sys.argv[1:5]
with open(path, encoding="utf-8") as f:
    doc = yaml.safe_load(f)
doc.pop("security", None)
doc["components"].pop("securitySchemes", None)
parameters = doc["components"]["parameters"]
for parameter, names in [
    ("Filter", filters),
    ("Recommender", recommenders),
    ("Promotion", promotions),
]:
    parameters[parameter]["schema"] = {"enum": [*names.split(","), ""]}
json.dump(doc, sys.stdout, ensure_ascii=False)
