"""Render the kustomize overlays and validate what they produce.

    python -m deploy.render [--overlay local|gpu|all] [--out DIR] [--k8s-dir DIR]

For each overlay: `kubectl kustomize deploy/k8s/overlays/<overlay>`, written to
deploy/rendered/<overlay>.yaml (or --out), then checked three ways:

1. yamllint (relaxed) on the rendered text and on the kustomize sources;
2. kubernetes-validate --strict against the bundled schemas of K8S_VERSION
   (offline: the schemas ship inside the package);
3. the project's own rules (deploy.policy) on the objects deploy.manifests reads.

Every problem is printed as `<overlay>: <Kind>/<name>: <message>`; the exit
status is 1 when any check fails, 2 when rendering itself fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from deploy.manifests import K8S_DIR, OVERLAYS, ROOT, RenderError, load_docs, render_overlay, where
from deploy.policy import Problem, project_problems

RENDERED = ROOT / "deploy" / "rendered"
# Schemas bundled with kubernetes-validate; 1.32 matches the kubectl used here
# and is the first release where every field used (preStop sleep, gRPC probes) is on by default.
K8S_VERSION = "1.32.0"
YAMLLINT_CONFIG = "extends: relaxed"


# ----------------------------------------------------------------------------- yamllint

def lint_problems(text: str, source: str) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) from yamllint's relaxed config."""
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    conf = YamlLintConfig(YAMLLINT_CONFIG)
    errors, warnings = [], []
    for p in linter.run(text, conf):
        item = Problem("yamllint", f"{source}:{p.line}:{p.column}", f"{p.desc} ({p.rule})")
        (errors if p.level == "error" else warnings).append(item)
    return errors, warnings


def source_yaml_files(k8s_dir: Path) -> list[Path]:
    return sorted(p for p in k8s_dir.rglob("*") if p.suffix in (".yaml", ".yml"))


# ----------------------------------------------------------------------------- schema

def schema_problems(docs: Iterable[dict], version: str = K8S_VERSION) -> list[Problem]:
    import kubernetes_validate

    out = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            # kubernetes_validate.ValidationError is a jsonschema.ValidationError.
            path = ".".join(str(p) for p in exc.absolute_path) or "(root)"
            out.append(Problem("schema", where(doc), f"{path}: {exc.message} (k8s {exc.version})"))
        except kubernetes_validate.SchemaNotFoundError as exc:
            out.append(Problem("schema", where(doc), exc.message))
    return out


# ----------------------------------------------------------------------------- driver

def check_rendered(text: str, name: str) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) for one rendered overlay."""
    errors, warnings = lint_problems(text, f"{name}.yaml")
    docs = load_docs(text)
    if not docs:
        errors.append(Problem("project", name, "rendered no objects"))
    errors += schema_problems(docs)
    errors += project_problems(docs)
    return errors, warnings


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m deploy.render", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--overlay", choices=[*OVERLAYS, "all"], default="all")
    p.add_argument("--out", type=Path, default=RENDERED,
                   help="directory for <overlay>.yaml (default: deploy/rendered)")
    p.add_argument("--k8s-dir", type=Path, default=K8S_DIR,
                   help="kustomize tree with base/ and overlays/ (default: deploy/k8s)")
    p.add_argument("--quiet", action="store_true", help="print problems only")
    args = p.parse_args(argv)

    overlays = OVERLAYS if args.overlay == "all" else (args.overlay,)
    failed = False
    for f in source_yaml_files(args.k8s_dir):
        errs, _ = lint_problems(f.read_text(encoding="utf-8"), str(f))
        for e in errs:
            print(f"source: {e}", file=sys.stderr)
        failed |= bool(errs)
    args.out.mkdir(parents=True, exist_ok=True)
    for overlay in overlays:
        try:
            text = render_overlay(args.k8s_dir, overlay)
        except RenderError as exc:
            print(f"{overlay}: render failed: {exc}", file=sys.stderr)
            return 2
        dest = args.out / f"{overlay}.yaml"
        dest.write_text(text, encoding="utf-8")
        errors, warnings = check_rendered(text, overlay)
        for w in warnings:
            if not args.quiet:
                print(f"{overlay}: warning: {w}", file=sys.stderr)
        for e in errors:
            print(f"{overlay}: {e}", file=sys.stderr)
        n = len(load_docs(text))
        if errors:
            failed = True
            print(f"{overlay}: FAILED with {len(errors)} problem(s) ({dest})", file=sys.stderr)
        elif not args.quiet:
            print(f"{overlay}: ok, {n} objects, yamllint + kubernetes-validate --strict "
                  f"(k8s {K8S_VERSION}) + project checks -> {dest}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
