"""Makes moto 5.2.1 answer as S3 does where byos's tests need it. Run once per install; each
change says so, and the script fails when the code to change is not there.

1. ListObjectVersions takes a KeyMarker as S3 does. S3 lists every version of the keys after
   KeyMarker. moto skips the keys before it and then also the first version at or after it:
   right when the marker is the previous page's last key and that key had one version, wrong
   otherwise. A reconcile that splits a versioned listing starts a range after a key of its
   choosing, where moto would drop a version.
2. ListBucketInventoryConfigurations answers in S3's XML. moto names the root element after the
   operation (`ListBucketInventoryConfigurationsResponse`) where S3 sends
   `ListInventoryConfigurationsResult`, which the SDK refuses to parse.
3. An inventory configuration keeps its IncludedObjectVersions: moto forgets it and answers
   `All` for every configuration.
"""

import pathlib
import sys

root = pathlib.Path(sys.argv[1]) / "moto" / "s3"

PATCHES = [
    (
        "models.py",
        "# byos: the keys after KeyMarker, as S3 lists them",
        """                    skip_versions = version.name < key_marker
                    continue
""",
        """                    # byos: the keys after KeyMarker, as S3 lists them
                    skip_versions = version.name <= key_marker
                    if skip_versions:
                        continue
""",
        "ListObjectVersions takes a KeyMarker as S3 does",
    ),
    (
        "models.py",
        "# byos: the versions it lists",
        """        bucket.inventory_configs[inv_config.id] = inv_config
""",
        """        # byos: the versions it lists
        inv_config.included_object_versions = inventory_configuration.get("IncludedObjectVersions", "All")
        bucket.inventory_configs[inv_config.id] = inv_config
""",
        "an inventory configuration keeps its IncludedObjectVersions",
    ),
    (
        "responses.py",
        "# byos: S3's root element",
        """        self.data["Action"] = "ListBucketInventoryConfigurations"
        return self.serialized(ActionResult(result))
""",
        """        # byos: S3's root element
        for config, inv in zip(configs, inventory_configuration_list):
            config["IncludedObjectVersions"] = getattr(inv, "included_object_versions", "All")

        def byos_xml(name, value):
            if isinstance(value, list):
                return "".join(byos_xml(name, v) for v in value)
            if isinstance(value, dict):
                inner = "".join(byos_xml(k, v) for k, v in value.items() if not k.startswith("@"))
                return f"<{name}>{inner}</{name}>"
            if isinstance(value, bool):
                value = "true" if value else "false"
            from xml.sax.saxutils import escape
            return f"<{name}>{escape(str(value))}</{name}>"

        body = "".join(byos_xml("InventoryConfiguration", c) for c in configs)
        return 200, {"Content-Type": "application/xml"}, (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListInventoryConfigurationsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"{body}<IsTruncated>false</IsTruncated></ListInventoryConfigurationsResult>"
        )
""",
        "ListBucketInventoryConfigurations answers in S3's XML",
    ),
]

for name, marker, before, after, what in PATCHES:
    path = root / name
    text = path.read_text()
    if marker in text:
        continue
    if text.count(before) != 1:
        sys.exit(f"{path}: moto's code is not as expected for '{what}'; see scripts/lib/patch-moto.py")
    path.write_text(text.replace(before, after))
    print(f"patched {path}: {what}")
