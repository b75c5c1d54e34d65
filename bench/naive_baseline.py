"""What a user would otherwise write: LlamaIndex defaults over the same model and the same Chroma.

    python bench/naive_baseline.py ingest FOLDER --persist DIR     # VectorStoreIndex.from_documents
    python bench/naive_baseline.py ask "question" --persist DIR    # as_query_engine(), no LLM
    python bench/naive_baseline.py queries --persist DIR --questions FILE --n 200

Same encoder weights (the bundled all-MiniLM-L6-v2 through HuggingFaceEmbedding, i.e.
sentence-transformers on torch), same store (an embedded Chroma PersistentClient, its own folder).
Everything else is LlamaIndex's default: SimpleDirectoryReader, SentenceSplitter(1024 tokens),
top-2 retrieval, and the default response synthesizer with `Settings.llm = None` (MockLLM), so
no model is called. It has no incremental mode: "re-ingest" rebuilds the collection.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
COLLECTION = "naive"


def _setup() -> None:
    from llama_index.core import Settings
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from qa.embed import bundled_model_dir

    Settings.embed_model = HuggingFaceEmbedding(model_name=str(bundled_model_dir()), device="cpu")
    Settings.llm = None


def _vector_store(persist: str) -> tuple[Any, Any]:
    import chromadb
    from llama_index.vector_stores.chroma import ChromaVectorStore

    client = chromadb.PersistentClient(path=persist, settings=chromadb.Settings(anonymized_telemetry=False))
    return client, ChromaVectorStore(chroma_collection=client.get_or_create_collection(COLLECTION))


def ingest(folder: str, persist: str) -> dict[str, Any]:
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex

    started = time.perf_counter()
    _setup()
    client, _ = _vector_store(persist)
    client.delete_collection(COLLECTION)
    client, store = _vector_store(persist)
    documents = SimpleDirectoryReader(folder, recursive=True).load_data()
    VectorStoreIndex.from_documents(documents, storage_context=StorageContext.from_defaults(vector_store=store))
    return {"seconds": round(time.perf_counter() - started, 3), "documents": len(documents), "nodes": store._collection.count()}


def _query_engine(persist: str) -> Any:
    from llama_index.core import VectorStoreIndex

    _setup()
    _, store = _vector_store(persist)
    return VectorStoreIndex.from_vector_store(store).as_query_engine()


def ask(question: str, persist: str) -> dict[str, Any]:
    response = _query_engine(persist).query(question)
    return {"sources": [n.node.metadata.get("file_name") for n in response.source_nodes]}


def queries(persist: str, questions_file: str, n: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tasks import percentiles, squash

    questions = [json.loads(line) for line in Path(questions_file).read_text().splitlines() if line.strip()]
    started = time.perf_counter()
    engine = _query_engine(persist)
    engine.query(questions[0]["question"])
    load_s = time.perf_counter() - started
    latencies = []
    for i in range(n):
        t = time.perf_counter()
        engine.query(questions[i % len(questions)]["question"])
        latencies.append((time.perf_counter() - t) * 1000)
    hits = 0
    t = time.perf_counter()
    for q in questions:
        response = engine.query(q["question"])
        if q.get("answerable", True):
            retrieved = " ".join(squash(s.node.get_content()) for s in response.source_nodes)
            hits += all(squash(e) in retrieved for e in q.get("evidence", []))
    eval_s = time.perf_counter() - t
    answerable = sum(1 for q in questions if q.get("answerable", True))
    return {
        "load_s": round(load_s, 3),
        "latency_ms": percentiles(latencies),
        "eval_s": round(eval_s, 3),
        "eval_qps": round(len(questions) / eval_s, 2),
        "evidence_retrieved": round(hits / max(answerable, 1), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["ingest", "ask", "queries"])
    parser.add_argument("target", nargs="?", help="folder (ingest) or question (ask)")
    parser.add_argument("--persist", required=True)
    parser.add_argument("--questions")
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    if args.command == "ingest":
        result = ingest(args.target, args.persist)
    elif args.command == "ask":
        result = ask(args.target, args.persist)
    else:
        result = queries(args.persist, args.questions, args.n)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
