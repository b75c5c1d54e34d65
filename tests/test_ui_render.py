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


def test_sources_show_page_or_section_and_the_folder() -> None:
    html = render_answer(Answer(text="Putin said no. [1]", citations=[_cite(page=3, folder="docs", source="report.pdf")]))
    assert "docs/report.pdf" in html and "page 3" in html and "paragraph" not in html.split("qa-source-location")[1][:40]
    html = render_answer(Answer(text="x [1]", citations=[_cite(section="Leave › Sick leave")]))
    assert "§ Leave › Sick leave, paragraph 2" in html


def test_a_source_opens_inside_its_whole_document_marked_at_its_offsets() -> None:
    document = "Intro line.\n\nMoscow denied it. Putin said no. Putin said no.\n\nOutro line."
    start = document.rindex("Putin said no.")
    cite = _cite(start=start, end=start + 14, doc_id="d" * 24)
    html = render_answer(Answer(text="Putin said no. [1]", citations=[cite]), {"d" * 24: document})
    assert 'class="qa-passage qa-document"' in html
    assert "Intro line.<br><br>Moscow denied it. Putin said no. <mark>Putin said no.</mark><br><br>Outro line." in html
    assert "\n\n" not in html
    # a stored text that no longer matches the citation falls back to the passage
    html = render_answer(Answer(text="Putin said no. [1]", citations=[cite]), {"d" * 24: "changed since"})
    assert "qa-document" not in html and "<mark>Putin said no.</mark>" in html


def test_markdown_from_markdown_documents_renders_but_stays_safe() -> None:
    passage = "Trips need **written approval** from a [manager](https://intranet.example.org/m_a_n) via `desk`; [x](javascript:alert(1)) <b>raw</b>."
    cite = _cite(quote=passage, passage=passage, start=0, end=len(passage), markup="markdown")
    html = render_answer(Answer(text=f"{passage} [1]", citations=[cite]))
    assert "<strong>written approval</strong>" in html and "<code>desk</code>" in html
    assert '<a href="https://intranet.example.org/m_a_n" target="_blank" rel="noopener noreferrer nofollow">manager</a>' in html
    assert "javascript:" not in html.replace("[x](javascript:alert(1))", "") and "<b>raw</b>" not in html
    assert "&lt;b&gt;raw&lt;/b&gt;" in html
    plain = render_answer(Answer(text=f"{passage} [1]", citations=[_cite(quote=passage, passage=passage, start=0, end=len(passage))]))
    assert "<strong>" not in plain  # text documents: asterisks stay literal
