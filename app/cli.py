"""The ``rag`` command line.

    rag ingest ./papers --index ./rag-index
    rag ui --index ./rag-index
"""
from __future__ import annotations

import json
import logging
import os
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from app.cli_common import embedder_option, fatal, open_knowledge_base, settings_from, storage_failure
from app.environment import prepare_process
from app.finetune_cli import finetune
from rag.config import OCR_MODES
from rag.retrieve.retriever import Mode


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Ask questions of your own documents, offline.

    \b
    Example:
        rag ingest ~/papers --index ./rag-index
        rag ui --index ./rag-index
    """
    prepare_process()


@main.command(epilog="Example:  rag ingest ./papers ./reports --index ./rag-index --prune --json")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [env RAG_INDEX; default ./rag-index].")
@click.option("--prune", is_flag=True, help="Remove files that are gone from disk (under PATHS) from the index.")
@click.option("--json", "as_json", is_flag=True, help="Print only the summary JSON object on stdout.")
@click.option("--wait", "lock_wait", type=float, default=0.0, show_default=True,
              help="Seconds to wait for another writer of the same index before giving up.")
@click.option("--chunk-size", type=int, help="Chunk size in estimated tokens [default 200].")
@click.option("--chunk-overlap", type=int, help="Chunk overlap in estimated tokens [default 30].")
@embedder_option
@click.option("--ocr", type=click.Choice(list(OCR_MODES)),
              help="Read pages by OCR: auto (pages without a useful text layer, and images), always, never "
                   "[rag.toml ocr; default auto].")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where files are parsed and embedded: this machine (a pool of parse processes), or Ray.")
@click.option("--address", help="With --engine ray: the cluster to join (e.g. ray://head:10001 or auto); "
                                "default a Ray instance on this machine.")
@click.option("--watch", is_flag=True, help="Keep running, and keep the index in sync with the folders as files are "
                                            "added, changed, renamed or deleted (a line per change); Ctrl-C stops.")
@click.option("--debounce", type=float, default=2.0, show_default=True,
              help="With --watch: seconds of quiet after a change before the index is synced.")
@click.pass_context
def ingest(ctx: click.Context, paths: tuple[Path, ...], index_dir: Path | None, prune: bool, as_json: bool,
           lock_wait: float, chunk_size: int | None, chunk_overlap: int | None, embed_model: str | None,
           ocr: str | None, engine: str, address: str | None, watch: bool, debounce: float) -> None:
    """Add new and changed files under PATHS to the index (PDF, TXT, MD, HTML, DOCX; PNG, JPEG, TIFF, BMP
    and WebP images, read by OCR, as are scanned PDF pages).

    Unchanged files are skipped, changed ones replaced; the index changes all at once or not at all.
    Exit status: 0 all ingested, 3 some files failed (the rest committed), 2 usage error, 1 nothing changed.
    """
    import sqlite3

    from ingest.engines import make_engine
    from ingest.pipeline import Ingestor
    from rag.embed import EmbedderError
    from rag.index import EmbedderMismatchError, IndexLockedError, IndexNotFoundError

    settings = settings_from(ctx, index_dir=index_dir, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                         embed_model=embed_model, ocr=ocr)
    if address and engine != "ray":
        raise click.UsageError("--address is for the Ray engine: add --engine ray")
    if watch:
        _watch(settings, paths, debounce, lock_wait)
    try:
        runner = make_engine(engine, settings, address)
    except ImportError:
        fatal("the Ray engine needs Ray: pip install 'rag-private-docs[ray]' (or pip install 'ray[data]')")
    except (ConnectionError, RuntimeError) as exc:
        fatal(f"cannot start or join the Ray cluster {address or '(local)'}: {str(exc).splitlines()[0]}")
    try:
        with runner:
            report = Ingestor(settings, lock_wait=lock_wait, engine=runner).run(list(paths), prune=prune)
    except (IndexLockedError, EmbedderMismatchError, EmbedderError, IndexNotFoundError) as exc:
        fatal(str(exc))
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        fatal(f"{settings.index_dir}: cannot update the index ({storage_failure(exc, settings.index_dir)}); the previous index is unchanged")
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report.summary(), ensure_ascii=False))
    else:
        s = report.summary()
        click.echo(
            f"{s['added']} added, {s['updated']} updated, {s['unchanged']} unchanged, {s['removed']} removed, "
            f"{len(s['failed'])} failed; {s['pages']} pages, {s['chunks']} chunks ({s['embedded']} embedded in "
            f"{s['embed_seconds']:.1f}s) in {s['seconds']:.1f}s"
        )
        if s["embedded"] or s["added"] or s["updated"]:
            click.echo("time: " + ", ".join(f"{stage} {t:.1f}s" for stage, t in s["stage_seconds"].items()))
        if report.missing:
            click.echo(f"{report.missing} indexed files are gone from disk; run with --prune to remove them")
        for failure in s["failed"]:
            click.echo(f"failed: {failure['path']}: {failure['reason']}")
        click.echo(f"index {settings.index_dir}: {s['index']}")
    sys.exit(report.exit_code)


def _watch(settings: Any, paths: tuple[Path, ...], debounce: float, lock_wait: float) -> None:
    """``rag ingest --watch``: sync now and after every burst of changes, until Ctrl-C (exit status 0)."""
    import threading

    from ingest.pipeline import Ingestor
    from ingest.watch import FolderWatcher

    not_folders = [str(p) for p in paths if not p.is_dir()]
    if not_folders:
        raise click.UsageError(f"--watch keeps folders in sync; not a folder: {', '.join(not_folders)}")
    ingestor = Ingestor(settings, progress=False, lock_wait=max(lock_wait, 60.0))
    watcher = FolderWatcher(list(paths), sync=lambda folders: ingestor.run(folders, prune=True), debounce_s=debounce,
                            on_change=lambda line: click.echo(line, err=line.startswith("sync failed")),
                            ignore=[settings.index_dir])
    click.echo(f"watching {', '.join(str(f) for f in watcher.folders)} for {settings.index_dir} (Ctrl-C to stop)")
    try:
        with watcher:
            threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopped watching")
    sys.exit(0)


def _read_batch(path: Path, key: str) -> list[str]:
    """One item per line: plain text, or a JSON object carrying it under ``key``."""
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                items.append(str(json.loads(line)[key]))
            except (ValueError, KeyError) as exc:
                raise click.BadParameter(f"{path}:{number}: expected a JSON object with {key!r} ({exc})") from exc
        else:
            items.append(line)
    return items


def _print_hits(result: Any) -> None:
    fusion = ""
    if result.fusion_ran is not None:
        fusion = f"; fusion {'ran' if result.fusion_ran else 'skipped'} ({result.gate_reason})"
    click.echo(f"{result.mode.value}: {len(result.hits)} hits in {result.ms:.0f} ms{fusion}")
    for hit in result.hits:
        text = " ".join((hit.context or hit.text).split())
        click.echo(f"[{hit.rank}] {hit.source}  p.{hit.page}  score {hit.score:.3f}  via {', '.join(hit.found_by)}")
        click.echo(f"    {text[:300]}{'…' if len(text) > 300 else ''}")


@main.command(epilog="Example:  rag search \"How long is the warranty?\" --index ./rag-index --mode fusion -k 5")
@click.argument("query", required=False)
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [env RAG_INDEX; default ./rag-index].")
@click.option("--mode", type=click.Choice([m.value for m in Mode]),
              default="hybrid", show_default=True, help="Retriever: bm25, dense, hybrid (both fused) or fusion (RAG-Fusion).")
@click.option("-k", "k", type=click.IntRange(1, 1000), default=10, show_default=True, help="Number of passages.")
@click.option("--queries", "queries_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run every query in FILE (a line of text, or JSONL with \"text\"); one JSON line out each.")
@click.option("--path", "paths", multiple=True, help="Only files matching this glob or under this folder (repeatable).")
@click.option("--lang", "languages", multiple=True, type=click.Choice(["zh", "en"]), help="Only chunks in this language.")
@click.option("--pages", help="Only these pages, e.g. 3 or 2-5.")
@click.option("--window", type=click.IntRange(0, 5), default=0, help="Add N neighbouring chunks either side as context.")
@click.option("--rerank/--no-rerank", default=True, help="Apply the cross-encoder set by RAG_RERANKER (if any).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@embedder_option
@click.pass_context
def search(ctx: click.Context, query: str | None, index_dir: Path | None, mode: str, k: int, queries_file: Path | None,
           paths: tuple[str, ...], languages: tuple[str, ...], pages: str | None, window: int, rerank: bool,
           as_json: bool, embed_model: str | None) -> None:
    """Find the passages that best match QUERY (English or Chinese)."""
    from rag.retrieve import Filters

    if (query is None) == (queries_file is None):
        raise click.UsageError("give a QUERY or --queries FILE (not both)", ctx)
    settings = settings_from(ctx, index_dir=index_dir, embed_model=embed_model)
    try:
        filters = Filters.parse(paths, languages, pages)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param_hint="--pages") from exc
    queries = [query] if query is not None else _read_batch(queries_file, "text")  # type: ignore[arg-type]
    retriever = open_knowledge_base(settings).retriever()
    for text in queries:
        result = retriever.search(text, mode=mode, k=k, filters=filters or None, rerank=rerank, window=window)
        if as_json or queries_file is not None:
            click.echo(json.dumps(result.to_json(), ensure_ascii=False))
        else:
            _print_hits(result)


@main.command(epilog="Example:  rag ask \"How long is the warranty?\" --index ./rag-index --llm openai:http://127.0.0.1:8000/v1#qwen2")
@click.argument("question", required=False)
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [env RAG_INDEX; default ./rag-index].")
@click.option("--llm", help="extractive (default) | hf:MODEL_DIR | openai:BASE_URL#MODEL [env RAG_LLM].")
@click.option("--adapter", help="A LoRA adapter folder for an hf: model [env RAG_ADAPTER].")
@click.option("--mode", type=click.Choice([m.value for m in Mode]), default="fusion", show_default=True)
@click.option("-k", "k", type=click.IntRange(1, 50), default=5, show_default=True, help="Passages given to the model.")
@click.option("--questions", "questions_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Answer every question in FILE (a line of text, or JSONL with \"question\"); one JSON line out each.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@embedder_option
@click.pass_context
def ask(ctx: click.Context, question: str | None, index_dir: Path | None, llm: str | None, adapter: str | None,
        mode: str, k: int, questions_file: Path | None, as_json: bool, embed_model: str | None) -> None:
    """Answer QUESTION from your documents, citing file and page; says so when they do not hold the answer."""
    from rag.generate.base import GenerationError
    from rag.pipeline import Answer

    if (question is None) == (questions_file is None):
        raise click.UsageError("give a QUESTION or --questions FILE (not both)", ctx)
    settings = settings_from(ctx, index_dir=index_dir, llm=llm, adapter=adapter, embed_model=embed_model)
    kb = open_knowledge_base(settings)
    try:
        pipeline = kb.pipeline(Mode(mode), k)
    except GenerationError as exc:
        fatal(str(exc))
    questions = [question] if question is not None else _read_batch(questions_file, "question")  # type: ignore[arg-type]
    streaming = not (as_json or questions_file is not None)
    for text in questions:
        try:
            for item in pipeline.stream(text):
                if isinstance(item, Answer):
                    answer = item
                elif streaming:
                    click.echo(item, nl=False)
        except GenerationError as exc:
            fatal(str(exc))
        if not streaming:
            click.echo(json.dumps(answer.to_json(), ensure_ascii=False))
            continue
        click.echo()
        if answer.refused:
            click.echo("\nNearest passages:")
            for p in answer.passages[:3]:
                click.echo(f"  {p.source}  p.{p.page}: {' '.join(p.text.split())[:200]}")
            continue
        click.echo("\nSources:")
        for c in answer.citations:
            click.echo(f"  [{c.n}] {c.source}  p.{c.page}: \"{' '.join(c.quote.split())[:200]}\"")
        for sentence in answer.unsupported:
            click.echo(f"  (not supported by its sources: {sentence})")


@main.command("eval", epilog="Example:  rag eval ../shared/eval/scifact --modes bm25,dense,hybrid,fusion -k 10 --out eval-out --json")
@click.argument("dataset", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--modes", default="bm25,dense,hybrid,fusion", show_default=True, help="Comma-separated retrieval modes.")
@click.option("-k", "k", type=click.IntRange(1, 100), default=10, show_default=True, help="Cut-off for nDCG, recall, MRR.")
@click.option("--out", type=click.Path(path_type=Path), help="Folder for report.json, report.md, report.html [default ./eval-out/NAME].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary JSON object.")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Your index, for JSONL cases and --synthetic.")
@click.option("--answers", "answer_sample", type=click.IntRange(0), default=200, show_default=True,
              help="Questions answered (extractive) for answer metrics when the dataset has gold answers.")
@click.option("--compare", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Compare two report.json files.")
@click.option("--synthetic", type=click.IntRange(1), help="Write N question/passage cases from --index as JSONL (to --out or stdout).")
@embedder_option
@click.pass_context
def evaluate(ctx: click.Context, dataset: Path | None, modes: str, k: int, out: Path | None, as_json: bool,
             index_dir: Path | None, answer_sample: int, compare: tuple[Path, Path] | None, synthetic: int | None, embed_model: str | None) -> None:
    """Measure retrieval (nDCG, recall, MRR, MAP, latency) per mode on a BEIR folder or your own JSONL cases."""
    from eval.beir import DatasetError

    if compare:
        from eval.compare import compare_reports, render

        comparison = compare_reports(*(json.loads(p.read_text(encoding="utf-8")) for p in compare))
        click.echo(json.dumps(comparison, ensure_ascii=False) if as_json else render(comparison))
        return
    settings = settings_from(ctx, index_dir=index_dir, embed_model=embed_model)
    if synthetic:
        from eval.synthetic import synthetic_cases

        retriever = open_knowledge_base(settings).retriever()
        cases = synthetic_cases(retriever.index, retriever.tokenizer, synthetic)
        text = "\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n"
        if out:
            out.write_text(text, encoding="utf-8")
            click.echo(f"{len(cases)} cases written to {out} ({cases[0]['label'] if cases else 'none'})", err=True)
        else:
            click.echo(text, nl=False)
        return
    if dataset is None:
        raise click.UsageError("give a DATASET folder, a JSONL file of cases with --index, --compare or --synthetic", ctx)
    try:
        chosen = [Mode(m.strip()) for m in modes.split(",") if m.strip()]
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; choose from {', '.join(m.value for m in Mode)}", ctx, param_hint="--modes") from exc
    try:
        if dataset.is_file():
            from eval.cases import evaluate_cases

            report = evaluate_cases(dataset, settings, chosen, k)
        else:
            from eval.evaluate import evaluate as run_evaluation

            report = run_evaluation(dataset, settings, chosen, k, answer_sample)
    except DatasetError as exc:
        fatal(str(exc))
    folder = out or Path("eval-out") / report["dataset"]
    if "recall_curves" in report:
        from eval.report import write_reports

        paths = write_reports(report, folder)
        click.echo(f"reports: {paths['markdown']}, {paths['html']}, {paths['json']}", err=True)
    summary = {key: report[key] for key in ("dataset", "n_queries", "modes", "answers", "published") if key in report}
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    click.echo(f"{report['dataset']}: {report['n_queries']} queries")
    for mode, values in report["modes"].items():
        click.echo(f"  {mode:14} nDCG@{k} {values[f'ndcg@{k}']:.4f}  recall@{k} {values[f'recall@{k}']:.4f}  "
                   f"MRR@{k} {values[f'mrr@{k}']:.4f}  p50 {values['p50_ms']:.1f} ms")


@main.command(epilog="Example:  rag feedback --index ./rag-index --out my-cases.jsonl && rag eval my-cases.jsonl --index ./rag-index")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [env RAG_INDEX; default ./rag-index].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the cases here instead of stdout.")
@click.pass_context
def feedback(ctx: click.Context, index_dir: Path | None, out: Path | None) -> None:
    """Export the UI's thumbs-up answers as evaluation cases (JSONL) for `rag eval CASES --index`."""
    from rag.feedback import FeedbackStore, as_cases, to_jsonl

    votes = FeedbackStore(settings_from(ctx, index_dir=index_dir).index_dir).all()
    cases = as_cases(votes)
    text = to_jsonl(cases)
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    up = sum(1 for v in votes if v.rating == 1)
    down = sum(1 for v in votes if v.rating == 0)
    click.echo(f"{up} up, {down} down; {len(cases)} cases" + (f" written to {out}" if out else ""), err=True)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse_unprotected(host: str, protected: bool, what: str, remedy: str) -> None:
    """Exit with status 2 when a server would listen beyond loopback without access control."""
    if not protected and not _is_loopback(host):
        click.echo(f"error: refusing to serve {what}: anyone who can reach it could read your documents; {remedy}, "
                   "or bind 127.0.0.1", err=True)
        sys.exit(2)


@main.command(epilog="Example:  rag serve --index ./rag-index --port 8000   (then: curl 127.0.0.1:8000/api/health)")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [env RAG_INDEX; default ./rag-index].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback requires API keys (RAG_API_KEYS or --keys-file).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--keys-file", type=click.Path(path_type=Path, dir_okay=False),
              help="SHA-256 hashes of the accepted API keys, one per line [env RAG_API_KEYS_FILE].")
@click.option("--cors-origin", "cors_origins", multiple=True, help="Allow browser calls from this origin (repeatable); default none.")
@click.option("--llm", help="extractive (default) | hf:MODEL_DIR | openai:BASE_URL#MODEL [env RAG_LLM].")
@click.option("--adapter", help="A LoRA adapter folder for an hf: model [env RAG_ADAPTER].")
@click.pass_context
def serve(ctx: click.Context, index_dir: Path | None, host: str, port: int, keys_file: Path | None,
          cors_origins: tuple[str, ...], llm: str | None, adapter: str | None) -> None:
    """Serve the knowledge base over HTTP: OpenAI-compatible /v1/chat/completions and /v1/models, and
    /api/search, /api/ask, /api/documents, /api/health (documented at /docs).

    Requests need "Authorization: Bearer KEY" once keys are configured.
    """
    import uvicorn

    from app.api import create_app
    from app.api_keys import ApiKeys, KeysError
    from app.knowledge_base import KnowledgeBase

    settings = settings_from(ctx, index_dir=index_dir, llm=llm, adapter=adapter)
    try:
        keys = ApiKeys.load(os.environ, keys_file)
    except KeysError as exc:
        fatal(str(exc))
    _refuse_unprotected(host, bool(keys), f"on {host} without API keys", "set RAG_API_KEYS or --keys-file")
    kb = KnowledgeBase(settings)
    _warming(kb.warm_in_background())
    app = create_app(kb, keys, list(cors_origins))
    click.echo(f"serving {settings.index_dir} on http://{host}:{port} (API docs at /docs; "
               f"{'API keys required' if keys else 'no API keys: loopback only'})", err=True)
    config = uvicorn.Config(app, host=host, port=port, log_level="info", server_header=False)  # sets up logging
    logging.getLogger("uvicorn.access").addFilter(_WithoutQueryString())
    uvicorn.Server(config).run()


WARM_START_WAIT_S = 30.0
"""How long ``rag ui`` and ``rag serve`` wait for the index and models to load before they listen."""


def _warming(thread: threading.Thread | None) -> None:
    """Let the warm-up load the index and models before the server listens, so its first page and first
    question find them loaded; past :data:`WARM_START_WAIT_S` the server starts anyway and the loading
    goes on in the background (as it does after every ingest, with the page usable)."""
    if thread is not None:
        click.echo("loading the index and models…", err=True)
        thread.join(WARM_START_WAIT_S)


class _WithoutQueryString(logging.Filter):
    """Uvicorn's access log with paths only: a client that sends its API key in the URL must not get it logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.args = (client, method, str(path).split("?", 1)[0], version, status)
        return True


@main.command(epilog="Example:  rag ui --index ./rag-index --port 8501")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [env RAG_INDEX; default ./rag-index].")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback requires RAG_UI_PASSWORD or Streamlit authentication.")
@click.option("--port", type=int, default=8501, show_default=True)
@click.pass_context
def ui(ctx: click.Context, index_dir: Path | None, host: str, port: int) -> None:
    """Start the Streamlit app (on 127.0.0.1 unless --host says otherwise and a password is set)."""
    from app.access import auth_configured, password_problem

    settings = settings_from(ctx, index_dir=index_dir)
    settings = replace(settings, index_dir=settings.index_dir.resolve())  # as the app names it: one cache key
    weak = password_problem(os.environ["RAG_UI_PASSWORD"]) if os.environ.get("RAG_UI_PASSWORD") else None
    if weak:
        click.echo(f"error: {weak}", err=True)
        sys.exit(2)
    _refuse_unprotected(host, bool(os.environ.get("RAG_UI_PASSWORD")) or auth_configured(Path.cwd()),
                        f"the UI on {host} without a password",
                        "set RAG_UI_PASSWORD or configure Streamlit authentication ([auth] in .streamlit/secrets.toml)")
    from streamlit.web import cli as streamlit_cli

    from app import resources

    script = Path(__file__).with_name("ui.py")
    os.environ["RAG_INDEX"] = str(settings.index_dir.resolve())
    _warming(resources.warm_in_background(settings))
    streamlit_cli.main([
        "run", str(script),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
        "--server.maxUploadSize", str(settings.max_upload_mb),
    ], prog_name="streamlit")


main.add_command(finetune)

if __name__ == "__main__":
    main()
