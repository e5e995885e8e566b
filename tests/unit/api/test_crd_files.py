"""`make crds` is idempotent and the committed crds/ and docs/crds.md are up to date."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agentfleet.core.api import generate

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("relative", sorted(generate.generated_files()))
def test_committed_file_matches_the_models(relative: str) -> None:
    committed = REPO_ROOT / relative
    assert committed.exists(), f"{relative} is missing: run `make crds`"
    assert committed.read_text() == generate.generated_files()[relative], (
        f"{relative} is stale: run `make crds` and commit the result"
    )


def test_generation_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    assert generate.main(["--root", str(tmp_path)]) == 0
    first = {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert generate.main(["--root", str(tmp_path), "--check"]) == 0
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()} == first


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate.main(["--root", str(tmp_path)])
    (tmp_path / "crds" / "workerpools.agentfleet.dev.yaml").write_text("edited by hand\n")
    assert generate.main(["--root", str(tmp_path), "--check"]) == 1
    assert "stale crds/workerpools.agentfleet.dev.yaml" in capsys.readouterr().out


def test_crd_files_are_single_yaml_documents_named_after_the_crd() -> None:
    for relative, content in generate.crd_files().items():
        document = yaml.safe_load(content)
        assert f"crds/{document['metadata']['name']}.yaml" == relative
        assert document["kind"] == "CustomResourceDefinition"


def test_reference_documents_every_spec_field() -> None:
    reference = generate.crd_reference()
    for path in (
        "spec.autoscaling.scaleUp.queueDepthAbove",
        "spec.credentialsSecretRef.name",
        "spec.env[].secretKeyRef.key",
        "status.conditions[].lastTransitionTime",
        "status.stages.*.inFlight",
    ):
        assert f"`{path}`" in reference
