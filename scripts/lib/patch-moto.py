"""Makes moto's ListObjectVersions take a KeyMarker as S3 does.

S3 lists every version of the keys after KeyMarker. moto 5.2.1 skips the keys before it and then
also the first version at or after it: right when the marker is the previous page's last key
and that key had one version, wrong otherwise. A reconcile that splits a versioned listing
starts a range after a key of its choosing, where moto would drop a version. Run once per
install; says so and fails when the code to change is not there.
"""

import pathlib
import sys

MARKER = "# byos: the keys after KeyMarker, as S3 lists them"
BEFORE = """                    skip_versions = version.name < key_marker
                    continue
"""
AFTER = f"""                    {MARKER}
                    skip_versions = version.name <= key_marker
                    if skip_versions:
                        continue
"""

models = pathlib.Path(sys.argv[1]) / "moto" / "s3" / "models.py"
text = models.read_text()
if MARKER in text:
    sys.exit(0)
if text.count(BEFORE) != 1:
    sys.exit(f"{models}: moto's KeyMarker code is not as expected; see scripts/lib/patch-moto.py")
models.write_text(text.replace(BEFORE, AFTER))
print(f"patched {models}: ListObjectVersions takes a KeyMarker as S3 does")
