"""A small ``__main__.py`` for the stand-in tests: one pulumi-openstack ``VolumeTypeV3`` through an
explicit provider (as ``components/storage.py`` declares it), and a toy resource that depends on it.

Config: ``volume_type`` (``name``, ``extraSpecs``, ``description``, ``region``: the resource's
arguments) and ``journal``/``world`` for the toy.
"""

import sys
from pathlib import Path

import pulumi
import pulumi_openstack as openstack

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
from toy_providers import Toy  # noqa: E402 - importable from this directory, as dill needs it

spec = pulumi.Config().require_object("volume_type")
provider = openstack.Provider("os", auth_url="http://keystone.test/v3", region="RegionOne",
                              user_name="admin", password=pulumi.Output.secret("not-used"),
                              tenant_name="admin")
volume_type = openstack.blockstorage.VolumeTypeV3(
    "images",
    name=spec["name"],
    extra_specs=spec.get("extraSpecs"),
    description=spec.get("description"),
    is_public=True,
    region=spec.get("region"),
    opts=pulumi.ResourceOptions(provider=provider),
)
consumer = Toy("consumer", {"value": "v", "key": "k1", "dbr": False, "fail_create": False, "invalid": None,
                            "sleep": 0, "upstream": None},
               pulumi.ResourceOptions(depends_on=[volume_type]), flavor="v1")
pulumi.export("volume_type_id", volume_type.id)
