"""The pcd-imagelib-ha policy pack. Constructing ``PolicyPack`` starts the analyzer server and blocks,
so this file does nothing else; the rules live in ``imagelib_policies`` where tests can import them."""

from imagelib_policies import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="pcd-imagelib-ha",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
    description="Image Library (Glance) HA prerequisites for Platform9 Private Cloud Director.",
)
