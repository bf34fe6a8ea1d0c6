"""Checks rendered Kubernetes manifests against the Kubernetes schemas (the JSON
schemas kubernetes-validate ships, strict: an unknown field is an error), for the
oldest and the newest Kubernetes release the manifests are meant for.

Usage: kubernetes_check.py RENDERED.yaml
Prints the documents as one JSON list on stdout; exits 1, naming each object and
error, when any document does not match its schema.
"""

import json
import sys

import kubernetes_validate
import yaml

VERSIONS = ["1.27.0", "1.37.0"]


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as rendered:
        documents = [d for d in yaml.safe_load_all(rendered) if d is not None]
    failures = []
    for document in documents:
        name = f"{document.get('kind')}/{document.get('metadata', {}).get('name')}"
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                at = ".".join(str(part) for part in error.path)
                failures.append(f"{name} (Kubernetes {version}) at {at}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                failures.append(f"{name} (Kubernetes {version}): {error}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    json.dump(documents, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
