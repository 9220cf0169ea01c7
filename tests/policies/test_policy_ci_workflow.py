"""The CI preview workflow cannot run here; what can be checked is that it says what the docs say."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"
DOC = ROOT / "docs" / "ci-and-policies.md"
PREVIEW_COMMAND = "pulumi preview --diff --policy-pack policies --policy-pack-config policies/config.json"

# The inputs pulumi/actions v7.0.0 documents in its action.yml (read from its repository).
PULUMI_ACTIONS_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
    "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider",
    "parallel", "message", "config-map", "expect-no-changes", "diff", "replace", "exclude",
    "exclude-dependents", "target", "target-dependents", "policyPacks", "policyPackConfigs", "refresh",
    "upsert", "remove", "edit-pr-comment", "color", "exclude-protected", "plan", "suppress-outputs",
    "suppress-progress", "always-include-summary", "continue-on-error", "log-verbosity", "log-flow", "debug",
}  # fmt: skip


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    job_steps: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return job_steps


def run_text(workflow: dict[str, Any], job: str) -> str:
    return "\n".join(step.get("run", "") for step in steps(workflow, job))


def make_targets_in(text: str) -> set[str]:
    return set(re.findall(r"\bmake ([a-z][a-z-]*)", text))


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def pulumi_action_steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    return [s for s in steps(workflow, job) if str(s.get("uses", "")).startswith("pulumi/actions@")]


def test_runs_on_pull_requests(workflow: dict[str, Any]) -> None:
    # PyYAML reads the bare key `on` as the boolean True (YAML 1.1).
    triggers = workflow["on"] if "on" in workflow else workflow[True]  # type: ignore[index]
    assert "pull_request" in triggers


def test_test_job_runs_the_documented_make_targets(workflow: dict[str, Any]) -> None:
    commands = make_targets_in(run_text(workflow, "test"))
    assert "test" in commands and "setup" in commands
    documented = make_targets_in(DOC.read_text())
    for job in workflow["jobs"]:
        used = make_targets_in(run_text(workflow, job))
        assert used <= makefile_targets(), f"{job} calls make targets the Makefile lacks: {used}"
        assert used <= documented, f"{job} calls make targets the docs do not show: {used - documented}"
    readme = ROOT / "README.md"
    if readme.exists():
        assert "make test" in readme.read_text()


def test_jobs_needing_the_lab_run_as_root_in_a_privileged_container(workflow: dict[str, Any]) -> None:
    for job in ("test", "policy-lab"):
        container = workflow["jobs"][job]["container"]
        assert "--privileged" in container["options"]
        assert "postgresql" in run_text(workflow, job)


def test_every_action_is_pinned_to_a_commit(workflow: dict[str, Any]) -> None:
    uses = [s["uses"] for job in workflow["jobs"] for s in steps(workflow, job) if "uses" in s]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), f"{ref} is not pinned to a commit SHA"


def test_region_preview_uses_the_pack_and_comments_the_diff(workflow: dict[str, Any]) -> None:
    job = workflow["jobs"]["preview"]
    assert "self-hosted" in job["runs-on"]
    assert job["permissions"]["pull-requests"] == "write"
    assert job["needs"] == "test"
    (step,) = pulumi_action_steps(workflow, "preview")
    inputs = step["with"]
    assert set(inputs) <= PULUMI_ACTIONS_INPUTS
    assert inputs["command"] == "preview"
    assert inputs["diff"] is True and inputs["comment-on-pr"] is True
    assert inputs["policyPacks"] == "policies"
    assert (ROOT / inputs["policyPacks"] / "PulumiPolicy.yaml").exists()
    assert inputs["policyPackConfigs"] == "policies/config.json"
    assert (ROOT / inputs["policyPackConfigs"]).exists()
    assert inputs["stack-name"] == "${{ vars.PULUMI_STACK }}"
    assert inputs["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    assert inputs["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert job["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


def test_every_repository_setting_the_workflow_reads_is_documented(workflow: dict[str, Any]) -> None:
    text = WORKFLOW.read_text()
    settings = set(re.findall(r"\$\{\{\s*(?:secrets|vars)\.([A-Z_]+)\s*\}\}", text)) - {"GITHUB_TOKEN"}
    assert settings >= {"PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_STACK"}
    doc = DOC.read_text()
    for name in settings:
        assert f"`{name}`" in doc, f"{name} is read by the workflow but not documented"


def test_lab_job_runs_the_documented_preview_command(workflow: dict[str, Any]) -> None:
    assert PREVIEW_COMMAND in run_text(workflow, "policy-lab")
    assert PREVIEW_COMMAND in DOC.read_text()
    assert workflow["jobs"]["policy-lab"]["needs"] == "test"
    lab_steps = steps(workflow, "policy-lab")
    assert lab_steps[-1].get("if") == "always()" and "make down" in lab_steps[-1]["run"]


def test_pulumi_cli_matches_the_pinned_sdk(workflow: dict[str, Any]) -> None:
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (sdk,) = [p.split("==")[1] for p in pins if p.startswith("pulumi==")]
    versions = [s["with"]["pulumi-version"] for job in ("preview", "policy-lab") for s in
                pulumi_action_steps(workflow, job)]
    assert versions and set(versions) == {sdk}
