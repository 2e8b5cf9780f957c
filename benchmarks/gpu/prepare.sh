#!/usr/bin/env bash
# Here, before a GPU call: the wheels the GPU image lacks (.whl/) and the data the run reads (.devdata/), both
# ignored by git (.git/info/exclude) and carried by the device tool (carry: [".whl", ".devdata"]).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .git/info .whl .devdata
for p in /.whl/ /.devdata/; do grep -qx "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude; done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_34_x86_64 -d .whl compressai==1.2.8
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .whl pytorch-msssim==1.0.0 \
  torchattacks==3.5.1
DATA=${LICCS_DATA:-../shared/data}
rm -rf .devdata/kodak && cp -r "$DATA/kodak" .devdata/kodak
cp "$DATA/cifar10-test.zip" .devdata/
git rev-parse HEAD > .devdata/COMMIT
git status --porcelain --untracked-files=no | grep -q . && sed -i 's/$/-dirty/' .devdata/COMMIT || true
du -sh .whl .devdata
