"""`freshrec models`: list, show, promote, roll back and rebase model versions in the registry."""

from __future__ import annotations

from typing import Annotated

import typer

from freshrec_cli.options import JsonOpt, checked_engine, current_settings, db_id
from freshrec_cli.output import emit

models_app = typer.Typer(no_args_is_help=True, help="The model registry.")


@models_app.command("list")
def models_list(limit: Annotated[int, typer.Option(min=1)] = 50, as_json: JsonOpt = False) -> None:
    """List model versions, newest first, with their status, aliases and held-out metrics."""
    from freshrec import registry

    rows = registry.list_models(checked_engine(current_settings()), limit)
    lines = [f"{'version':>7} {'status':<10} {'aliases':<10} {'parent':>6} {'base':<8} {'AUC':>6} {'bytes':>9} created"]
    for r in rows:
        auc = (r["metrics"].get("candidate") or {}).get("auc")
        lines.append(f"{r['version']:>7} {r['status']:<10} {','.join(r['aliases']) or '-':<10} "
                     f"{r['parent_version'] or '-':>6} {r['base_model'][:8]:<8} "
                     f"{('%.3f' % auc) if auc is not None else '-':>6} "
                     f"{r['artifact_size'] if r['has_artifact'] else 'pruned':>9} {r['created_at'][:19]}")
    emit({"models": rows}, as_json, "\n".join(lines) if rows else "no model versions yet")


@models_app.command("show")
def models_show(version: Annotated[int, typer.Argument(help="Model version.")], as_json: JsonOpt = False) -> None:
    """One version: lineage, config, metrics on its held-out rows, every gate decision and alias move."""
    import json

    from freshrec import registry

    info = registry.show_model(checked_engine(current_settings()), db_id(version, "version"))
    m = info["metrics"]
    extra = (info.get("config") or {}).get("extra") or {}
    lineage = extra.get("lineage") or {}
    made = ", ".join([lineage["kind"].replace("_", " ")] * bool(lineage.get("kind"))
                     + ["head only"] * (lineage.get("scope") == "head"))
    lines = [f"version {info['version']}: {info['status']}" + (f" ({', '.join(info['aliases'])})" if info["aliases"]
                                                              else ""),
             f"parent {info['parent_version'] or '-'}, base {info['base_model']} ({info['train_mode']}"
             f"{', ' + made if made else ''}), cycle "
             f"{info['cycle_id']}, batches {info['training_batch_ids']}, created {info['created_at'][:19]}",
             f"sha256 {info['artifact_sha256']} ({info['artifact_size']} bytes"
             + (")" if info["has_artifact"] else ", bytes pruned)")]
    fit = lineage.get("wide_fit")
    if fit:  # the wide part's posterior (freshrec/wide.py): the rows this version added, and where it started
        from freshrec.features import side_columns
        from freshrec.model import ModelConfig

        names = side_columns(ModelConfig.from_json(info["config"]))
        start = {"hand-set": "from the hand-set prior", "running": "continuing the newest attempt's posterior",
                 "champion": "continuing its parent's posterior"}.get(fit.get("prior"), "")
        total = f", {fit['rows_total']} in all" if "rows_total" in fit else ""
        lines.append(f"wide part fitted to {fit['rows']} rows{' ' + start if start else ''}{total}: " + ", ".join(
            f"{name} {w:+.3f}" for name, w in zip(names, fit["weights"])) + f", bias {fit['bias']:+.3f}")
    trained = extra.get("last_train") or {}
    if trained.get("steps") is not None:  # how its training went (fine_tune: config.extra.last_train)
        speed = f" at {trained['examples_per_s']:.1f} examples/s" if trained.get("examples_per_s") else ""
        lines.append(f"trained {trained['steps']} steps, {trained.get('examples')} examples{speed}, learning rate "
                     f"{trained.get('learning_rate') or 0:.2e}")
    for who in ("candidate", "champion", "prequential"):
        if m.get(who):
            lines.append(f"{who:>11}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                     for k, v in m[who].items()))
    for d in info["decisions"]:
        lines.append(f"decision in cycle {d['cycle_id']}: {d['outcome']} vs champion {d['champion_version']}")
        lines += [f"  {'pass' if r['passed'] else 'FAIL'} {r['rule']}: {r['detail']}" for r in d["rules"]]
    for h in info["alias_history"]:
        lines.append(f"{h['changed_at'][:19]} {h['action']} {h['alias']}: {h['from_version']} -> {h['to_version']}")
    emit(json.loads(json.dumps(info, default=str)), as_json, "\n".join(lines))


@models_app.command("promote")
def models_promote(version: Annotated[int, typer.Argument(help="Model version to make champion.")],
                   reason: Annotated[str, typer.Option(help="Why, for the alias history.")] = "promoted by hand",
                   as_json: JsonOpt = False) -> None:
    """Make a version the champion now (serving processes swap to it)."""
    from freshrec import registry

    settings = current_settings()
    result = registry.promote(checked_engine(settings), db_id(version, "version"), reason,
                              allowed_base_models=settings.base_models_allowed)
    emit(result, as_json, f"champion is version {version}" + ("" if result["changed"] else " already"))


@models_app.command("rollback")
def models_rollback(reason: Annotated[str, typer.Option(help="Why, for the alias history.")] = "rolled back by hand",
                    as_json: JsonOpt = False) -> None:
    """Back to the previous champion (again: one further back), atomically and recorded."""
    from freshrec import registry

    settings = current_settings()
    result = registry.rollback(checked_engine(settings), reason, allowed_base_models=settings.base_models_allowed)
    emit(result, as_json, f"champion is version {result['champion']} again (was {result['previous']})")


@models_app.command("rebase")
def models_rebase(reason: Annotated[str, typer.Option(help="Why, recorded with the candidate.")] = "asked by hand",
                  as_json: JsonOpt = False) -> None:
    """Train the next cycle's candidate from the base model with the current settings (a new lineage); it
    competes with the champion through the same gate."""
    from freshrec.rebase import request_rebase

    settings = current_settings()
    request_rebase(checked_engine(settings), settings.consumer, reason)
    emit({"consumer": settings.consumer, "rebase": "requested", "reason": reason}, as_json,
         f"the next cycle of consumer {settings.consumer!r} that trains rebases from {settings.model}")
