#!/usr/bin/env bash
# Dataproc initialization action (deploy/dataproc.sh passes it): lets every node's Docker read the
# Artifact Registry of the image named in the cluster metadata `wwm-image`, and pulls the image once,
# so Beam's DOCKER environment starts the SDK workers from it. NOT RUN here.
set -euo pipefail
image="$(/usr/share/google/get_metadata_value attributes/wwm-image)"
registry="${image%%/*}"
gcloud auth configure-docker "$registry" --quiet
docker pull "$image"
