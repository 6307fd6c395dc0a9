"""Declared contracts between layers: what a loss tells a backend, and which layer may import which."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from medssr_nemo.config.schema import GRPOConfig
from medssr_nemo.grpo.losses import make_grpo_loss
from medssr_nemo.policy.loss_contract import (MAX_RESPONSE_LEN, NUM_SEQS, NUM_TOKENS, LossFunction, StepLoss,
                                              check_loss_function, global_normalisers)

PACKAGE = Path(__file__).resolve().parents[1] / "medssr_nemo"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _runtime_nodes(tree: ast.AST):
    """Every node, except the bodies of ``if TYPE_CHECKING:`` (imports for annotations only)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def _project_imports(path: Path) -> set[str]:
    """Every ``medssr_nemo.*`` module a file imports, at any depth (function-local ones too)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("medssr_nemo.")}


@pytest.mark.parametrize("layer", ["policy", "rollout", "rewards"])
def test_backends_engines_and_rewards_never_import_the_algorithm_layer(layer):
    offenders = {str(path.relative_to(PACKAGE)): sorted(n for n in _project_imports(path) if n.startswith("medssr_nemo.grpo"))
                 for path in (PACKAGE / layer).rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def _resolved(name: str) -> str | None:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in MODULES else None


DESIGN = PACKAGE.parent / "docs" / "design.md"
# the declared exception of docs/design.md: the schema's choice lists come from the registries
SCHEMA_READS_REGISTRIES = {
    ("medssr_nemo.config.schema.grpo", "medssr_nemo.grpo.advantages"),
    ("medssr_nemo.config.schema.grpo", "medssr_nemo.grpo.losses"),
    ("medssr_nemo.config.schema.policy", "medssr_nemo.policy.schedules"),
}


def _layer_table() -> dict[str, int]:
    """``docs/design.md``'s layer table, bottom row first: module or package prefix -> layer."""
    text = DESIGN.read_text(encoding="utf-8")
    section = text[text.index("## Layers"):text.index("## Seams")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    layers = {}
    for index, row in enumerate(rows):
        cells = row.split("|")[2]
        for name in re.findall(r"`([^`]+)`", cells):
            layers["medssr_nemo." + name.removesuffix("/").removesuffix(".py").replace("/", ".")] = index
    return layers


def _layer_of(module: str, layers: dict[str, int]) -> int | None:
    name = module
    while name not in layers and "." in name:
        name = name.rsplit(".", 1)[0]
    return layers.get(name)


def test_the_design_documents_layer_table_places_every_module():
    layers = _layer_table()
    assert len(set(layers.values())) == 7
    unplaced = [m for m in MODULES if m != "medssr_nemo" and _layer_of(m, layers) is None]
    assert unplaced == []
    missing = [prefix for prefix in layers if not any(m == prefix or m.startswith(prefix + ".") for m in MODULES)]
    assert missing == []          # the table names no module that is gone


def test_every_import_goes_to_the_same_layer_or_below_as_the_design_document_says():
    layers = _layer_table()
    upward = []
    for module, path in MODULES.items():
        own = _layer_of(module, layers)
        for target in filter(None, map(_resolved, _project_imports(path))):
            theirs = _layer_of(target, layers)
            if theirs is not None and own is not None and theirs > own and (module, target) not in SCHEMA_READS_REGISTRIES:
                upward.append(f"{module} -> {target}")
    assert sorted(upward) == []


def test_the_package_has_no_import_cycles():
    graph = {module: {m for m in map(_resolved, _project_imports(path)) if m and m != module}
             for module, path in MODULES.items()}
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_own_modules_are_imported_at_top_level_outside_the_cli():
    """Function-local imports hide the dependency graph; only ``cli/`` defers loading its work
    (so ``--help`` answers without torch)."""
    local = []
    for module, path in MODULES.items():
        if module.startswith("medssr_nemo.cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local += [f"{module}:{sub.lineno}" for sub in ast.walk(node)
                          if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("medssr_nemo")]
    assert local == []


def test_the_grpo_loss_declares_what_a_backend_needs():
    loss = make_grpo_loss(GRPOConfig(entropy_coef=0.01), temperature=0.7)
    assert isinstance(loss, LossFunction)
    assert check_loss_function(loss) is loss
    assert (loss.temperature, loss.entropy) == (0.7, "loss")
    assert set(loss.normalisers) == {NUM_TOKENS, NUM_SEQS, MAX_RESPONSE_LEN}
    assert make_grpo_loss(GRPOConfig(), log_entropy=False).entropy == "off"


def test_a_loss_that_declares_nothing_is_refused_with_the_missing_names():
    def bare(logprobs, batch, norms):
        return logprobs.sum(), {}

    with pytest.raises(TypeError, match=r"lacks \['temperature', 'entropy', 'normalisers'\]"):
        check_loss_function(bare)


def test_step_loss_sums_micro_batch_losses_and_weights_metrics_by_tokens():
    class Mean:
        temperature, entropy, normalisers = 1.0, "metric", (NUM_TOKENS,)

        def __call__(self, logprobs, batch, norms):
            mask = batch["response_mask"]
            assert "entropy" in batch
            return (logprobs * mask).sum() / norms[NUM_TOKENS], {"value": float((logprobs * mask).sum() / mask.sum())}

    mask = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0]])
    logprobs = torch.tensor([[0.0, -1.0, -2.0, -3.0], [0.0, 0.0, -4.0, 0.0]])
    norms = global_normalisers(mask)
    assert norms == {NUM_TOKENS: 4.0, NUM_SEQS: 2.0, MAX_RESPONSE_LEN: 3.0}
    step = StepLoss(Mean(), norms)
    for rows in (slice(0, 1), slice(1, 2)):
        step(logprobs[rows], {"response_mask": mask[rows]}, entropy=torch.zeros_like(logprobs[rows]))
    # the two micro-batch losses add up to the full batch's token mean: -10 / 4
    assert float(step.loss_total) == pytest.approx(-2.5)
    # token-weighted: (3 * -2 + 1 * -4) / 4
    assert step.metrics.reduce() == {"value": pytest.approx(-2.5)}
    reported = step.step_metrics(-2.5, 0.1, 1e-6, False, step.metrics.reduce())
    assert reported["num_tokens"] == 4.0 and reported["num_seqs"] == 2.0 and reported["update_skipped"] == 0.0


# Writes outside artifacts.py, each into a temporary place that is renamed whole afterwards (or no
# file a run leaves); any other module writes through artifacts.py (atomic, or durable appends).
WRITES_INTO_A_TEMPORARY_PLACE = {
    "medssr_nemo.policy.hf": "files inside artifacts.atomic_directory's temporary directory",
    "medssr_nemo.policy.megatron.checkpoint": "files inside artifacts.atomic_directory's temporary directory",
    "medssr_nemo.grpo.checkpoint": "files inside artifacts.atomic_directory's temporary directory",
    "medssr_nemo.knowledge.corpus": "files inside artifacts.atomic_directory's temporary directory",
    "medssr_nemo.knowledge.hpo": "into artifacts.atomic_path's temporary file",
    "medssr_nemo.data.download": "a .part file renamed when verified; a lock file",
    "medssr_nemo.data.convert": "into the download's temporary file",
    "medssr_nemo.pipeline.runner": "renames whole step directories aside and back",
    "medssr_nemo.rollout.rank_split": "opens os.devnull",
    "medssr_nemo.launch.sbatch": "regenerates the example sbatch scripts in the source tree",
}


def _file_writes(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("write_text", "write_bytes", "replace", "rename"):
            if func.attr in ("write_text", "write_bytes") or getattr(func.value, "id", None) == "os":
                lines.append(node.lineno)
        elif isinstance(func, ast.Name) and func.id == "open":
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax"):
                lines.append(node.lineno)
    return lines


def test_files_are_written_through_the_artifacts_module():
    ad_hoc = {module: _file_writes(path) for module, path in MODULES.items()
              if module != "medssr_nemo.artifacts" and module not in WRITES_INTO_A_TEMPORARY_PLACE}
    assert {module: lines for module, lines in ad_hoc.items() if lines} == {}
