"""What the chat page renders for an Answer: markers, sources, highlighted quotes, badges, escaping."""

from __future__ import annotations

from qa.types import Answer, Chunk, Citation
from qa.ui_render import highlight, render_answer, render_documents, render_question

PASSAGE = "Moscow denied it. Putin said no. Putin said no."


def _cite(**kw: object) -> Citation:
    base = dict(n=1, source="notes.md", title="Notes", paragraph=2, start=140, end=154, quote="Putin said no.",
                score=1.0, chunk_id="c1", passage=PASSAGE)
    base.update(kw)
    return Citation(**base)  # type: ignore[arg-type]


def test_quote_is_marked_at_its_cited_offsets() -> None:
    # the chunk starts at 107, so chars 140-154 are the second "Putin said no." of the passage
    chunk = Chunk(id="c1", source="notes.md", title="Notes", paragraph=2, start=107, end=154, text=PASSAGE)
    html = highlight(_cite(), chunk.start)
    assert html == "Moscow denied it. Putin said no. <mark>Putin said no.</mark>"
    answer = Answer(text="Putin said no. [1]", citations=[_cite()], retrieved=[chunk])
    assert "Putin said no. <mark>Putin said no.</mark>" in render_answer(answer)


def test_without_the_chunk_start_the_first_occurrence_is_marked() -> None:
    assert highlight(_cite()) == "Moscow denied it. <mark>Putin said no.</mark> Putin said no."


def test_sources_list_file_title_paragraph_and_markers_stay_inline() -> None:
    html = render_answer(Answer(text="Putin said no. [1]", citations=[_cite()]))
    assert '<span class="qa-ref">[1]</span>' in html
    assert "<details" in html and "<summary>" in html
    assert "notes.md" in html and "Notes" in html and "paragraph 2" in html
    assert "\n\n" not in html  # a blank line would end the HTML block and let Markdown in


def test_document_text_is_escaped_never_rendered() -> None:
    evil = '<img src=x onerror=alert(1)> **bold** [link](http://evil) $$x$$'
    cite = _cite(passage=evil, quote="<img src=x onerror=alert(1)>")
    html = render_answer(Answer(text=evil + " [1]", citations=[cite]))
    assert "<img" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<mark>&lt;img src=x onerror=alert(1)&gt;</mark>" in html
    assert "<script" not in render_question("<script>alert(1)</script>")


def test_abstention_has_no_sources() -> None:
    html = render_answer(Answer(text="The documents don't say.", abstained=True, citations=[_cite()]))
    assert "no answer in the documents" in html
    assert "qa-sources" not in html


def test_badges_name_the_mode_and_warn_when_ungrounded() -> None:
    assert "extractive" in render_answer(Answer(text="x"))
    html = render_answer(Answer(text="x", mode="llm:llama3.1:8b", grounded=False, notice="The model timed out twice."))
    assert "LLM · llama3.1:8b" in html and "⚠ ungrounded" in html
    assert "The model timed out twice." in html


def test_corpus_panel_counts_documents_and_chunks() -> None:
    html = render_documents([{"source": "a.md", "title": "A", "chunks": 3}, {"source": "<b>.txt", "title": "", "chunks": 2}])
    assert "2 documents, 5 chunks indexed" in html
    assert "&lt;b&gt;.txt" in html
    assert "No documents indexed yet" in render_documents([])
