"""Mutation check of the critical paths: each curated single-line mutation is applied to a
temporary copy of the tree, the few tests chosen for it run there, and a table says which
mutations the tests caught. Every mutation must be caught (exit status 1 otherwise).

A mutation is (file, exact original text, replacement, tests). The original text must occur
exactly once in the file: when the code has moved and it does not, the check fails loudly
naming the mutation, so the list is updated instead of silently testing nothing.

    .venv/bin/python scripts/mutation_check.py                 # all mutations
    .venv/bin/python scripts/mutation_check.py --only kl_ref   # names containing a substring (a,b: either)
    .venv/bin/python scripts/mutation_check.py --list          # the list, nothing run
    .venv/bin/python scripts/mutation_check.py --dry-run       # does every original text still occur once?

Not part of the default test run (README, "Tests"): it runs each mutation's tests in a fresh
pytest process, so it takes minutes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIRING = "tests/test_grpo_config_wiring.py"
SETTING = WIRING + "::test_each_setting_changes_the_computation_as_its_formula_says[{}]"
RECIPE = WIRING + "::test_the_default_recipe_computes_what_the_formulas_say"
SCRIPTED = WIRING + "::test_scripted_replies_exercise_the_answer_metrics_and_both_extraction_modes"
TRAINER = "medssr_nemo/grpo/trainer.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    area: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]


def M(name: str, area: str, file: str, original: str, replacement: str, *tests: str) -> Mutation:
    return Mutation(name, area, file, original, replacement, tests)


MUTATIONS = [
    # ---- advantages
    M("adv_always_std", "advantages", "medssr_nemo/grpo/advantages.py",
      "advantages = centred / (std[index] + eps) if normalize_std else centred",
      "advantages = centred / (std[index] + eps)", "tests/test_grpo_math.py"),
    M("adv_biased_std", "advantages", "medssr_nemo/grpo/advantages.py",
      "denom = (counts - 1).clamp(min=1) if unbiased else counts", "denom = counts", "tests/test_grpo_math.py"),
    M("adv_singleton_zero", "advantages", "medssr_nemo/grpo/advantages.py",
      "no_signal = zero_std & ~singleton", "no_signal = zero_std", "tests/test_grpo_math.py"),
    M("sum_norm_times_seqs", "losses", "medssr_nemo/grpo/losses.py",
      "return masked.sum() / max(norms[MAX_RESPONSE_LEN], 1.0)",
      "return masked.sum() / max(norms[NUM_SEQS] * norms[MAX_RESPONSE_LEN], 1.0)", "tests/test_grpo_math.py"),
    # ---- losses and KL
    M("clip_low_is_clip_high", "losses", "medssr_nemo/grpo/losses.py",
      "ratio.clamp(1.0 - clip_low, 1.0 + clip_high)", "ratio.clamp(1.0 - clip_high, 1.0 + clip_high)",
      "tests/test_grpo_math.py"),
    M("dual_clip_max", "losses", "medssr_nemo/grpo/losses.py",
      "torch.minimum(loss, -advantages * dual_clip)", "torch.maximum(loss, -advantages * dual_clip)",
      "tests/test_grpo_math.py"),
    M("k3_drops_log_term", "KL", "medssr_nemo/grpo/losses.py",
      "return torch.exp(d) - d - 1", "return torch.exp(d) - 1", "tests/test_grpo_math.py"),
    M("kl_coef_constant", "KL", "medssr_nemo/grpo/losses.py",
      "loss_mat = loss_mat + cfg.kl_coef * kl", "loss_mat = loss_mat + 0.001 * kl", SETTING.format("grpo.kl_coef")),
    M("kl_estimator_fixed", "KL", "medssr_nemo/grpo/losses.py",
      "kl = kl_penalty(logprobs, batch[\"ref_logprobs\"].to(logprobs.dtype), cfg.kl_estimator, cfg.kl_clamp)",
      "kl = kl_penalty(logprobs, batch[\"ref_logprobs\"].to(logprobs.dtype), \"k3\", cfg.kl_clamp)",
      SETTING.format("grpo.kl_estimator=k1")),
    M("entropy_bonus_sign", "losses", "medssr_nemo/grpo/losses.py",
      "loss_mat = loss_mat - cfg.entropy_coef * batch[\"entropy\"]",
      "loss_mat = loss_mat + cfg.entropy_coef * batch[\"entropy\"]", SETTING.format("grpo.entropy_coef")),
    M("aggregation_fixed", "losses", "medssr_nemo/grpo/losses.py",
      "return aggregate(loss_mat, mask, cfg.loss_aggregation, norms), metrics",
      "return aggregate(loss_mat, mask, \"token-mean\", norms), metrics",
      SETTING.format("grpo.loss_aggregation=seq-mean-token-mean")),
    M("rollout_is_cap_read_as_zero", "losses", "medssr_nemo/grpo/losses.py",
      "if cfg.rollout_is_cap > 0:", "if 0.0 > 0:", SETTING.format("grpo.rollout_is_cap")),
    M("rollout_is_weights_uncapped", "losses", "medssr_nemo/grpo/rollout_correction.py",
      "return torch.exp(log_ratio.clamp(max=torch.log(torch.tensor(cap, dtype=torch.float64)).item())).detach()",
      "return torch.exp(log_ratio).detach()", SETTING.format("grpo.rollout_is_cap")),
    M("pg_loss_mean_over_padding", "logged metrics", "medssr_nemo/grpo/losses.py",
      "metrics[\"pg_loss\"] = float(masked_mean(loss_mat.detach(), mask))",
      "metrics[\"pg_loss\"] = float(loss_mat.detach().mean())", RECIPE),
    M("clip_frac_high_reads_clip_low", "logged metrics", "medssr_nemo/grpo/losses.py",
      "\"clip_frac_high\": float(masked_mean((positive & (r > 1.0 + clip_high)).float(), valid)),",
      "\"clip_frac_high\": float(masked_mean((positive & (r > 1.0 + clip_low)).float(), valid)),",
      SETTING.format("grpo.clip_high")),
    # ---- trainer wiring
    M("trainer_normalize_std", "trainer wiring", "medssr_nemo/grpo/advantages.py",
      "normalize_std=cfg.normalize_std", "normalize_std=True", SETTING.format("grpo.normalize_std")),
    M("trainer_std_unbiased", "trainer wiring", "medssr_nemo/grpo/advantages.py",
      "unbiased=cfg.std_unbiased", "unbiased=True", SETTING.format("grpo.std_unbiased")),
    M("trainer_advantage_eps", "trainer wiring", "medssr_nemo/grpo/advantages.py",
      "eps=cfg.advantage_eps)", "eps=1e-6)", SETTING.format("grpo.advantage_eps")),
    M("trainer_advantage_estimator_fixed", "trainer wiring", TRAINER,
      "get_advantage_estimator(cfg.grpo.advantage_estimator)", "get_advantage_estimator(\"grpo\")",
      SETTING.format("grpo.advantage_estimator=rloo")),
    M("policy_loss_fixed", "losses", "medssr_nemo/grpo/losses.py",
      "self.policy_loss = get_policy_loss(cfg.policy_loss)", "self.policy_loss = get_policy_loss(\"ppo_clip\")",
      SETTING.format("grpo.policy_loss=gpg")),
    M("trainer_kl_against_policy", "KL", TRAINER,
      "batch[\"ref_logprobs\"] = self.policy.reference_logprobs(batch, self.logprob_temperature)",
      "batch[\"ref_logprobs\"] = self.policy.logprobs(batch, self.logprob_temperature)",
      WIRING + "::test_kl_is_measured_against_the_frozen_initial_policy"),
    M("trainer_sum_norm_length", "trainer wiring", TRAINER,
      "max_response_len=cfg.rollout.max_new_tokens,", "max_response_len=None,",
      SETTING.format("grpo.loss_aggregation=seq-mean-token-sum-norm")),
    M("trainer_logprob_temperature", "trainer wiring", TRAINER,
      "self.logprob_temperature = temperature if temperature > 0 else 1.0", "self.logprob_temperature = 1.0",
      SETTING.format("rollout.temperature")),
    M("trainer_top_p", "sampling", TRAINER, "top_p=cfg.rollout.top_p", "top_p=1.0", SETTING.format("rollout.top_p")),
    M("trainer_top_k", "sampling", TRAINER, "top_k=cfg.rollout.top_k", "top_k=0", SETTING.format("rollout.top_k")),
    M("trainer_rollout_batch", "sampling", TRAINER,
      "cfg.seed, self.step, cfg.rollout.batch_size)", "cfg.seed, self.step, 64)",
      WIRING + "::test_rollout_batch_size_splits_engine_calls_without_changing_samples"),
    M("trainer_one_epoch", "trainer wiring", TRAINER,
      "for _epoch in range(cfg.grpo.ppo_epochs):", "for _epoch in range(1):", SETTING.format("grpo.ppo_epochs")),
    M("trainer_no_old_logprobs", "losses", TRAINER,
      "if cfg.grpo.ppo_epochs > 1:", "if cfg.grpo.ppo_epochs > 2:", SETTING.format("grpo.clip_low")),
    M("metric_logged_constant", "logged metrics", TRAINER,
      "\"reward/mean\": float(scored.rewards.mean()),", "\"reward/mean\": 0.0,", RECIPE),
    M("trainer_no_refit", "refit", TRAINER,
      "weight_version = self.engine.update_weights(self.policy.export_hf_weights()) + self._version_offset",
      "weight_version = self.engine.update_weights([]) + self._version_offset",
      "tests/test_refit_weights.py::test_trainer_refits_the_engine_copy_with_the_updated_weights"),
    M("resume_sampler_reset", "resume", TRAINER,
      "self.sampler.restore(state[SAMPLER_KEY])", "self.sampler.restore({\"epoch\": 0, \"position\": 0})",
      "tests/test_grpo_trainer.py::test_interrupted_run_resumes_to_identical_weights"),
    # ---- rollouts, seeds and reward routing
    M("seed_ignores_step", "sampling", "medssr_nemo/grpo/rollouts.py",
      "seeds.append(sample_seed(run_seed, step, question.record.id, sample))",
      "seeds.append(sample_seed(run_seed, 0, question.record.id, sample))", RECIPE),
    M("seed_from_salted_hash", "sampling", "medssr_nemo/grpo/rollouts.py",
      "return int.from_bytes(digest[:8], \"little\") & ((1 << 63) - 1)",
      "return hash((run_seed, step, question_id, sample)) & ((1 << 63) - 1)",
      "tests/test_seeds_across_processes.py"),
    M("reward_extraction_fixed_paper", "extraction", TRAINER,
      "self.answer_reader = AnswerReader(answer_extraction(cfg, \"reward\"), cfg.model.path)",
      "self.answer_reader = AnswerReader(\"paper\", cfg.model.path)", SETTING.format("reward.answer_extraction")),
    M("format_rate_logged_zero", "logged metrics", "medssr_nemo/grpo/rollouts.py",
      "metrics[\"answer/format_rate\"] = formatted / total", "metrics[\"answer/format_rate\"] = 0.0", SCRIPTED),
    M("valid_rate_counts_every_reply", "logged metrics", "medssr_nemo/grpo/rollouts.py",
      "valid += sum(a is not None for a in answers)", "valid += len(answers)", SCRIPTED),
    M("one_group_id", "advantages", "medssr_nemo/grpo/rollouts.py",
      "group_ids += [group_id] * len(completions)", "group_ids += [0] * len(completions)", RECIPE),
    M("reward_routed_to_gold", "reward routing", "medssr_nemo/rewards/composite.py",
      "return label_source, self.by_label_source[label_source].score(group)",
      "return label_source, self.by_label_source[\"gold\"].score(group)", RECIPE),
    M("reward_weight_dropped", "reward routing", "medssr_nemo/rewards/composite.py",
      "total = [t + term.weight * r for t, r in zip(total, scored.rewards)]",
      "total = [t + r for t, r in zip(total, scored.rewards)]",
      WIRING + "::test_reward_terms_are_routed_by_label_source_and_weighted"),
    # ---- extraction, voting, sampling
    M("extract_first_match", "extraction", "medssr_nemo/answers.py",
      "if letter in valid and match.start(1) > best.position:", "if letter in valid and best.position < 0:",
      "tests/test_answers.py"),
    M("extract_paper_first_match", "extraction", "medssr_nemo/answers.py",
      "matches = rule.findall(text)", "matches = rule.findall(text)[:1]", "tests/test_answers.py"),
    M("vote_agreement_over_votes", "voting", "medssr_nemo/labelling/vote.py",
      "agreement = top / total", "agreement = top / votes", "tests/test_label_vote.py"),
    M("vote_tau_inclusive", "voting", "medssr_nemo/labelling/vote.py",
      "if agreement < rule.min_agreement and rule.below_min_agreement == \"drop\":",
      "if agreement <= rule.min_agreement and rule.below_min_agreement == \"drop\":", "tests/test_label_vote.py"),
    M("top_p_drops_crossing_token", "sampling", "medssr_nemo/rollout/sampling.py",
      "probs = probs.masked_fill(mass_before >= top_p, 0.0)", "probs = probs.masked_fill(mass_before + probs >= top_p, 0.0)",
      "tests/test_rollout_inprocess.py::test_top_p_keeps_the_nucleus_with_renormalised_frequencies"),
    M("top_k_off_by_one", "sampling", "medssr_nemo/rollout/sampling.py",
      "values, order = torch.topk(scores, min(top_k, scores.size(-1)), dim=-1)",
      "values, order = torch.topk(scores, min(top_k + 1, scores.size(-1)), dim=-1)",
      "tests/test_rollout_inprocess.py::test_top_k_one_equals_greedy",
      "tests/test_rollout_inprocess.py::test_sampling_matches_transformers_warpers_on_random_logits"),
    # ---- refit
    M("inprocess_refit_skips_cast", "refit", "medssr_nemo/rollout/inprocess.py",
      "if tensor.data_ptr() != target.data_ptr():",
      "if tensor.data_ptr() != target.data_ptr() and tensor.dtype == target.dtype:",
      "tests/test_refit_weights.py::test_inprocess_refit_of_a_copy_in_another_dtype_holds_every_source_tensor",
      "tests/test_refit_weights.py::test_inprocess_refit_from_bfloat16_into_float32_is_exact"),
    M("trtllm_refit_skips_cast", "refit", "medssr_nemo/rollout/trtllm/refit.py",
      "if self.engine_dtype is not None and tensor.is_floating_point():",
      "if self.engine_dtype is not None and not tensor.is_floating_point():",
      "tests/test_refit_weights.py::test_tensorrt_llm_refit_in_bfloat16_holds_every_tensor"),
    # ---- decontamination, synthesis plan, synthesis, report
    M("decontam_ignores_ids", "decontamination", "medssr_nemo/data/decontam.py",
      "if record.id in self._ids:", "if record.id in ():", "tests/test_decontam.py"),
    M("decontam_coverage_threshold", "decontamination", "medssr_nemo/data/decontam.py",
      "if coverage >= self.ngram_min_coverage and (best is None or coverage > best.coverage):",
      "if coverage > 1.0 and (best is None or coverage > best.coverage):", "tests/test_decontam.py"),
    M("plan_rare_gate_inverted", "synthesis plan", "medssr_nemo/synthesis/plan.py",
      "rare_flags = [rho < target.alpha for rho in rhos]", "rare_flags = [rho > target.alpha for rho in rhos]",
      "tests/test_synth_plan.py"),
    M("plan_quota_no_remainder", "synthesis plan", "medssr_nemo/synthesis/plan.py",
      "short = n - sum(counts.values())", "short = 0", "tests/test_synth_plan.py"),
    M("engine_synthesis_replies_misordered", "synthesis", "medssr_nemo/synthesis/generators.py",
      "for (i, _), completion in zip(batch, completions):", "for (i, _), completion in zip(batch, completions[::-1]):",
      "tests/test_synth_engine_scripted.py"),
    M("figure_kl_panel_plots_reward", "report", "medssr_nemo/pipeline/figures.py",
      "(\"train/kl\", \"KL to the reference policy\")", "(\"reward/mean\", \"KL to the reference policy\")",
      "tests/test_report_figure_data.py"),
    M("report_histogram_kept_swapped", "report", "medssr_nemo/pipeline/report.py",
      "[\"kept\" if vote[\"kept\"] else \"dropped\"] += 1", "[\"dropped\" if vote[\"kept\"] else \"kept\"] += 1",
      "tests/test_report_figure_data.py"),
]


class MutationNotApplicable(RuntimeError):
    pass


def copy_tree(dest: Path) -> None:
    """The working tree as git sees it (tracked + untracked, not ignored) under ``dest``."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def apply(mutation: Mutation, tree: Path) -> str:
    """Write the mutated file into ``tree``; returns the original text to restore."""
    path = tree / mutation.file
    if not path.exists():
        raise MutationNotApplicable(f"{mutation.name}: {mutation.file} does not exist")
    text = path.read_text(encoding="utf-8")
    count = text.count(mutation.original)
    if count != 1:
        raise MutationNotApplicable(f"{mutation.name}: the original text occurs {count} times in {mutation.file} "
                                    f"(must be exactly once): {mutation.original!r}")
    mutated = text.replace(mutation.original, mutation.replacement)
    try:  # compile() writes no .pyc: a cached mutated module must never outlive the mutation
        compile(mutated, str(path), "exec")
    except SyntaxError as err:
        raise MutationNotApplicable(f"{mutation.name}: the mutated {mutation.file} does not compile: {err}") from None
    path.write_text(mutated, encoding="utf-8")
    return text


def python_exe() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# the editable install maps these import names to the original checkout's folders
PACKAGES = {"medssr_nemo": "medssr_nemo", "medssr_nemo_conf": "conf", "medssr_nemo_plugins": "plugins"}
IMPORT_PROBE = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(importlib.import_module(name).__file__)\n"


def import_path(tree: Path) -> Path:
    """A folder of links, one per package name the editable install maps, to the copy's folders
    (``medssr_nemo_conf`` is ``conf/``): on PYTHONPATH with the copy's root, every process the
    tests start imports the copy (PYTHONPATH precedes the editable finder, which is appended to
    ``sys.meta_path``)."""
    links = tree.parent / "import_path"
    links.mkdir(exist_ok=True)
    for name, folder in PACKAGES.items():
        if name != folder and not (links / name).exists():
            (links / name).symlink_to(tree / folder, target_is_directory=True)
    return links


def test_env(tree: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment of the copy's test runs: PYTHONPATH points at the copy, so a child
    started as a script (``python tests/seed_probe.py``, a torchrun job), whose sys.path[0] is
    its own folder rather than the copy's root, imports the mutated copy too, not the original
    through the editable install."""
    return {**base, "PYTHONPATH": os.pathsep.join([str(tree), str(import_path(tree))])}


def check_imports_from(tree: Path, env: dict[str, str]) -> None:
    """Every package must come from the copy, both for pytest's process (run from the copy's
    root) and for a script run from the copy's tests/ folder, as the subprocess tests start
    theirs; otherwise a mutation would be "caught" because parent and child run different code."""
    probe = tree / "tests" / "_mutation_import_probe.py"
    probe.write_text(IMPORT_PROBE, encoding="utf-8")
    try:
        for how, cmd, cwd in (("python -c from the copy's root", ["-c", IMPORT_PROBE], tree),
                              ("a script in the copy's tests/", [str(probe)], tree / "tests")):
            done = subprocess.run([python_exe(), *cmd, *PACKAGES], cwd=cwd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"mutation check: the import probe ({how}) failed: {done.stderr[-2000:]}")
            for name, out in zip(PACKAGES, done.stdout.split()):
                if not Path(out).resolve().is_relative_to(tree.resolve()):
                    raise SystemExit(f"mutation check: {how} imports {name} from {out}, not from the copy {tree}")
    finally:
        probe.unlink()


@dataclass
class Outcome:
    verdict: str     # caught | SURVIVED | broken | timeout | ERROR rc=N
    detail: str      # the first failure (test and message), or pytest's last line


def verdict_of(rc: int, report: Path) -> tuple[str, str]:
    """Caught only when tests ran and one failed: pytest exits 1 for setup errors too, and 2 for
    collection errors, and neither says the mutation was detected (it may just not import)."""
    if rc == 124:
        return "timeout", ""
    failures, errors = [], []
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            for tag, found in (("failure", failures), ("error", errors)):
                for node in case.findall(tag):
                    message = (node.get("message") or tag).strip().splitlines() or [tag]
                    found.append(f"{name}: {message[0][:160]}")
    if errors:
        return "broken", errors[0]
    if rc == 1 and failures:
        return "caught", failures[0]
    if rc == 0:
        return "SURVIVED", ""
    return f"ERROR rc={rc}", ""


def run_tests(tree: Path, tests: tuple[str, ...], env: dict[str, str], timeout: int) -> Outcome:
    report = tree.parent / "junit.xml"
    report.unlink(missing_ok=True)
    cmd = [python_exe(), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not gpu",
           f"--junitxml={report}", *tests]
    try:
        done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Outcome("timeout", "timed out")
    lines = (done.stdout + done.stderr).strip().splitlines()
    verdict, first = verdict_of(done.returncode, report)
    return Outcome(verdict, first or (lines[-1] if lines else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="",
                        help="run the mutations whose name contains this text (comma-separated: any of them)")
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="only check that every mutation still applies (its original text is found once)")
    parser.add_argument("--no-baseline", action="store_true", help="skip running the selected tests unmutated first")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per mutation's test run")
    args = parser.parse_args(argv)
    names = [m.name for m in MUTATIONS]
    if len(set(names)) != len(names):
        raise SystemExit("mutation check: duplicate mutation names")
    wanted = args.only.split(",")   # "" matches every name
    selected = [m for m in MUTATIONS if any(part in m.name for part in wanted)]
    if not selected:
        raise SystemExit(f"mutation check: no mutation name contains {args.only!r}")
    if args.list:
        for m in selected:
            print(f"{m.name:38s} {m.area:16s} {m.file}\n    - {m.original}\n    + {m.replacement}\n    tests: {' '.join(m.tests)}")
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("MEDSSR_DATA", str(ROOT.parent / "shared" / "data"))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medssr-mutation-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        env = test_env(tree, env)
        check_imports_from(tree, env)
        # every original must be found before anything runs: a moved line fails loudly, at once
        problems = []
        for m in selected:
            try:
                (tree / m.file).write_text(apply(m, tree), encoding="utf-8")
            except MutationNotApplicable as err:
                problems.append(str(err))
        if problems:
            print("mutation check: these mutations no longer apply (the code moved; update the list):",
                  *problems, sep="\n  ", file=sys.stderr)
            return 2
        if args.dry_run:
            print(f"all {len(selected)} mutations apply")
            return 0
        if not args.no_baseline:
            tests = tuple(dict.fromkeys(t for m in selected for t in m.tests))
            baseline = run_tests(tree, tests, env, args.timeout * 4)
            if baseline.verdict != "SURVIVED":
                print(f"mutation check: the selected tests fail WITHOUT any mutation ({baseline.verdict}): "
                      f"{baseline.detail}", file=sys.stderr)
                return 2
            print(f"baseline: the selected tests pass unmutated ({baseline.detail}; "
                  f"{time.monotonic() - started:.0f} s)")
        rows = []
        for m in selected:
            t0 = time.monotonic()
            original = apply(m, tree)
            try:
                outcome = run_tests(tree, m.tests, env, args.timeout)
            finally:
                (tree / m.file).write_text(original, encoding="utf-8")
            verdict = outcome.verdict
            rows.append((m, verdict, time.monotonic() - t0, outcome.detail))
            print(f"{m.name:38s} {verdict:10s} {time.monotonic() - t0:6.1f} s  {outcome.detail}", flush=True)
    print()
    print("| mutation | area | file | result | seconds | first failure |")
    print("|---|---|---|---|---|---|")
    for m, verdict, seconds, detail in rows:
        print(f"| {m.name} | {m.area} | {m.file} | {verdict} | {seconds:.0f} | {detail.replace('|', '/')[:120]} |")
    caught = sum(v == "caught" for _, v, _, _ in rows)
    print(f"\n{caught} of {len(rows)} mutations caught in {time.monotonic() - started:.0f} s")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
