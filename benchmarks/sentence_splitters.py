"""Compare sentence splitters (pysbd, syntok, blingfire) for verbatim, offset-based citation.

What it measures, per library:
  * accuracy on hand-written tricky English cases (abbreviations, decimals, initials,
    ellipses, quotes, lists, URLs, hard-wrapped PDF lines, headings, bullets): a case
    passes only if the whitespace-stripped sentence list equals the expected list exactly;
  * speed on the SQuAD v1.1 dev contexts (2,067 paragraphs): total seconds, chars/second;
  * answer-cut rate on SQuAD: share of distinct gold answer spans (answer_start + text)
    with a sentence start strictly inside them, i.e. cut in two (a proxy for bad splits;
    answers that truly span two sentences put a floor under every library);
  * lossy paragraphs: SQuAD contexts whose sentence spans do not cover every
    non-whitespace character in order (text dropped or overlapping spans);
  * paragraph merges: with each article's contexts joined by blank lines into one
    document (48 documents), sentences that run across a blank line.
Every library is used through character offsets into the original text, as the citing
tool needs them: pysbd Segmenter(clean=False, char_span=True), syntok segmenter.analyze
token offsets, blingfire text_to_sentences_and_offsets.

Run from the repo root:
  .venv/bin/python benchmarks/sentence_splitters.py --data ../shared/datasets/squad/dev-v1.1.json
  [--out results.json] [--repeat 3] [--show-failures]
"""

import argparse
import json
import platform
import time
from importlib.metadata import version
from pathlib import Path

import blingfire
import pysbd
from syntok import segmenter as syntok_segmenter

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT / "../shared/datasets/squad/dev-v1.1.json"

# (id, text, expected sentences). Expected splits are what a citing tool should quote.
CASES = [
    (
        "us-mid",
        "The U.S. economy grew 2% last year. Analysts expected more.",
        ["The U.S. economy grew 2% last year.", "Analysts expected more."],
    ),
    (
        "us-end",
        "He moved to the U.S. The next year he founded a company.",
        ["He moved to the U.S.", "The next year he founded a company."],
    ),
    (
        "uk-mid",
        "Talks with the U.K. government stalled. Ministers met again on Friday.",
        ["Talks with the U.K. government stalled.", "Ministers met again on Friday."],
    ),
    ("dr", "Dr. Watson examined the patient. She was fine.", ["Dr. Watson examined the patient.", "She was fine."]),
    (
        "mr-mrs",
        "Mr. and Mrs. Smith arrived late. The dinner had started.",
        ["Mr. and Mrs. Smith arrived late.", "The dinner had started."],
    ),
    (
        "eg",
        "Use a common format, e.g. CSV or JSON. Avoid binary files.",
        ["Use a common format, e.g. CSV or JSON.", "Avoid binary files."],
    ),
    (
        "ie",
        "The fee is waived for members, i.e. anyone who has paid dues. Others pay $10.",
        ["The fee is waived for members, i.e. anyone who has paid dues.", "Others pay $10."],
    ),
    (
        "etc-mid",
        "Bring pens, paper, etc. to the exam. Phones are not allowed.",
        ["Bring pens, paper, etc. to the exam.", "Phones are not allowed."],
    ),
    (
        "etc-end",
        "We bought apples, pears, oranges, etc. The total was modest.",
        ["We bought apples, pears, oranges, etc.", "The total was modest."],
    ),
    (
        "inc-mid",
        "Apple Inc. reported record revenue. Its shares rose 3%.",
        ["Apple Inc. reported record revenue.", "Its shares rose 3%."],
    ),
    (
        "inc-end",
        "The contract went to Acme Inc. The losing bidder appealed.",
        ["The contract went to Acme Inc.", "The losing bidder appealed."],
    ),
    (
        "ltd-co",
        "Mitsubishi Heavy Industries Ltd. and Toyota Motor Co. signed the deal. Terms were not disclosed.",
        ["Mitsubishi Heavy Industries Ltd. and Toyota Motor Co. signed the deal.", "Terms were not disclosed."],
    ),
    (
        "jan",
        "The law took effect on Jan. 1, 2020. It was repealed a year later.",
        ["The law took effect on Jan. 1, 2020.", "It was repealed a year later."],
    ),
    (
        "month-day-end",
        "Gov. Newsom signed the bill on Oct. 3. It takes effect in Jan. 2025.",
        ["Gov. Newsom signed the bill on Oct. 3.", "It takes effect in Jan. 2025."],
    ),
    (
        "sept-am",
        "On Sept. 11, 2001, at 8:46 a.m., the first plane struck. The second followed.",
        ["On Sept. 11, 2001, at 8:46 a.m., the first plane struck.", "The second followed."],
    ),
    (
        "no",
        "The patent is listed as No. 5,123,456 in the registry. It expired in 2010.",
        ["The patent is listed as No. 5,123,456 in the registry.", "It expired in 2010."],
    ),
    (
        "st",
        "They met at St. Paul's Cathedral. The service lasted an hour.",
        ["They met at St. Paul's Cathedral.", "The service lasted an hour."],
    ),
    (
        "am-pm-mid",
        "The meeting starts at 9 a.m. and ends at 5 p.m. sharp. Lunch is provided.",
        ["The meeting starts at 9 a.m. and ends at 5 p.m. sharp.", "Lunch is provided."],
    ),
    (
        "pm-end",
        "The store closes at 9 p.m. Employees leave shortly after.",
        ["The store closes at 9 p.m.", "Employees leave shortly after."],
    ),
    (
        "phd",
        "She earned a Ph.D. in physics from MIT. She then joined NASA.",
        ["She earned a Ph.D. in physics from MIT.", "She then joined NASA."],
    ),
    (
        "v-case",
        "The case Roe v. Wade was decided in 1973. It was overturned in 2022.",
        ["The case Roe v. Wade was decided in 1973.", "It was overturned in 2022."],
    ),
    (
        "etal-fig",
        "Smith et al. reported similar results (see Fig. 3). The effect was robust.",
        ["Smith et al. reported similar results (see Fig. 3).", "The effect was robust."],
    ),
    (
        "approx-lower",
        "The sample was heated to approx. two hundred degrees. It melted.",
        ["The sample was heated to approx. two hundred degrees.", "It melted."],
    ),
    (
        "lowercase-start",
        "He bought an iPhone. iOS updates followed within a week.",
        ["He bought an iPhone.", "iOS updates followed within a week."],
    ),
    (
        "money",
        "Revenue rose to $2.4 billion in 2023. Profit was 3.14 percent of sales.",
        ["Revenue rose to $2.4 billion in 2023.", "Profit was 3.14 percent of sales."],
    ),
    (
        "decimal-end",
        "The value of pi is approximately 3.14159. It is irrational.",
        ["The value of pi is approximately 3.14159.", "It is irrational."],
    ),
    (
        "number-start",
        "The town had 8,500 residents. 1,200 of them were children.",
        ["The town had 8,500 residents.", "1,200 of them were children."],
    ),
    (
        "initials-jrr",
        "The Hobbit was written by J. R. R. Tolkien. It was published in 1937.",
        ["The Hobbit was written by J. R. R. Tolkien.", "It was published in 1937."],
    ),
    (
        "initial-jfk",
        "President John F. Kennedy was elected in 1960. He was assassinated in 1963.",
        ["President John F. Kennedy was elected in 1960.", "He was assassinated in 1963."],
    ),
    (
        "ww2",
        "He served in World War II. After the war he taught history.",
        ["He served in World War II.", "After the war he taught history."],
    ),
    (
        "ellipsis-mid",
        "He paused... then continued speaking. Everyone listened.",
        ["He paused... then continued speaking.", "Everyone listened."],
    ),
    (
        "ellipsis-end",
        "I was not sure what to say... The silence lasted a minute.",
        ["I was not sure what to say...", "The silence lasted a minute."],
    ),
    (
        "quote-said",
        '"We will win," she said. "The polls are wrong."',
        ['"We will win," she said.', '"The polls are wrong."'],
    ),
    (
        "quote-period-inside",
        'He called it "a disaster." Critics agreed.',
        ['He called it "a disaster."', "Critics agreed."],
    ),
    (
        "curly-quotes",
        "\u201cWe are ready,\u201d the minister said. \u201cTalks begin Monday.\u201d",
        ["\u201cWe are ready,\u201d the minister said.", "\u201cTalks begin Monday.\u201d"],
    ),
    ("quote-question-mid", '"Are you serious?" he asked. She nodded.', ['"Are you serious?" he asked.', "She nodded."]),
    (
        "quote-question-end",
        'She asked, "Is it over?" Nobody answered.',
        ['She asked, "Is it over?"', "Nobody answered."],
    ),
    (
        "paren-end",
        "The results were significant (p < 0.05). Further work is needed.",
        ["The results were significant (p < 0.05).", "Further work is needed."],
    ),
    (
        "paren-sentence",
        "The company lost money. (It had done so for three years.) Investors were unhappy.",
        ["The company lost money.", "(It had done so for three years.)", "Investors were unhappy."],
    ),
    (
        "q-excl",
        "Where did he go? Nobody knows! The search continues.",
        ["Where did he go?", "Nobody knows!", "The search continues."],
    ),
    ("interrobang", "You did what?! That is amazing.", ["You did what?!", "That is amazing."]),
    (
        "wiki-cite",
        "The river is 6,650 km long.[1] It flows north into the sea.",
        ["The river is 6,650 km long.[1]", "It flows north into the sea."],
    ),
    (
        "inline-enum",
        "The plan has two goals: (1) cut costs and (2) raise revenue. Both are ambitious.",
        ["The plan has two goals: (1) cut costs and (2) raise revenue.", "Both are ambitious."],
    ),
    (
        "numbered-list",
        "Follow these steps:\n1. Open the file.\n2. Edit the text.\n3. Save it.",
        ["Follow these steps:", "1. Open the file.", "2. Edit the text.", "3. Save it."],
    ),
    (
        "url",
        "See https://www.example.com/docs/index.html for details. The page was updated.",
        ["See https://www.example.com/docs/index.html for details.", "The page was updated."],
    ),
    ("url-end", "Visit example.com. It has more information.", ["Visit example.com.", "It has more information."]),
    (
        "email",
        "Contact john.doe@example.org for access. Replies take a day.",
        ["Contact john.doe@example.org for access.", "Replies take a day."],
    ),
    (
        "pdf-wrap",
        "The committee reviewed the proposal in\ndetail and found several problems with the\nbudget. It recommended a revision.",
        [
            "The committee reviewed the proposal in\ndetail and found several problems with the\nbudget.",
            "It recommended a revision.",
        ],
    ),
    (
        "pdf-wrap-caps",
        "Funding was provided by the National\nScience Foundation and the Department of\nEnergy. The authors thank the reviewers.",
        [
            "Funding was provided by the National\nScience Foundation and the Department of\nEnergy.",
            "The authors thank the reviewers.",
        ],
    ),
    (
        "pdf-hyphen",
        "The results were statis-\ntically significant. We repeat them here.",
        ["The results were statis-\ntically significant.", "We repeat them here."],
    ),
    (
        "heading",
        "Introduction\nThe study examines sentence boundaries. It uses news text.",
        ["Introduction", "The study examines sentence boundaries.", "It uses news text."],
    ),
    (
        "heading-blank",
        "Results and Discussion\n\nThe model performed well. Errors were rare.",
        ["Results and Discussion", "The model performed well.", "Errors were rare."],
    ),
    (
        "bullets",
        "Key findings:\n\u2022 Costs fell by 10%.\n\u2022 Sales rose.\n\u2022 Margins improved",
        ["Key findings:", "\u2022 Costs fell by 10%.", "\u2022 Sales rose.", "\u2022 Margins improved"],
    ),
    (
        "dash-bullets",
        "Requirements\n- Python 3.11\n- 8 GB RAM\n- A GPU",
        ["Requirements", "- Python 3.11", "- 8 GB RAM", "- A GPU"],
    ),
]


def spans_pysbd():
    seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return lambda text: [(s.start, s.end) for s in seg.segment(text)]


def spans_syntok():
    def run(text):
        return [
            (sent[0].offset, sent[-1].offset + len(sent[-1].value))
            for para in syntok_segmenter.analyze(text)
            for sent in para
            if sent
        ]

    return run


def spans_blingfire():
    return lambda text: [tuple(o) for o in blingfire.text_to_sentences_and_offsets(text)[1]]


LIBRARIES = {"pysbd": spans_pysbd, "syntok": spans_syntok, "blingfire": spans_blingfire}


def sentences(text, spans):
    return [t for t in (text[a:b].strip() for a, b in spans) if t]


def stripped_starts(text, spans):
    """Start offset of each span's first non-whitespace character."""
    out = []
    for a, b in spans:
        seg = text[a:b]
        if seg.strip():
            out.append(a + len(seg) - len(seg.lstrip()))
    return out


def is_lossy(text, spans):
    """True if the spans skip a non-whitespace character or go backwards/overlap."""
    pos = 0
    for a, b in spans:
        if a < pos or text[pos:a].strip():
            return True
        pos = b
    return bool(text[pos:].strip())


def score_cases(split):
    failures = []
    for cid, text, expected in CASES:
        got = sentences(text, split(text))
        if got != expected:
            failures.append((cid, got))
    return failures


def load_squad(path):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    paragraphs, docs, bad = [], [], 0
    for article in data["data"]:
        docs.append("\n\n".join(p["context"] for p in article["paragraphs"]))
        for p in article["paragraphs"]:
            ctx, answers = p["context"], set()
            for qa in p["qas"]:
                for ans in qa["answers"]:
                    s, t = ans["answer_start"], ans["text"].strip()
                    s += len(ans["text"]) - len(ans["text"].lstrip())
                    if t and ctx[s : s + len(t)] == t:
                        answers.add((s, s + len(t)))
                    else:
                        bad += 1
            paragraphs.append((ctx, sorted(answers)))
    return paragraphs, docs, bad


def bench_squad(split, paragraphs, repeat):
    best, all_spans = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        spans = [split(ctx) for ctx, _ in paragraphs]
        best = min(best, time.perf_counter() - t0)
        all_spans = spans
    cut = total = lossy = 0
    for (ctx, answers), sp in zip(paragraphs, all_spans):
        starts = stripped_starts(ctx, sp)[1:]
        lossy += is_lossy(ctx, sp)
        for s, e in answers:
            total += 1
            cut += any(s < b < e for b in starts)
    return best, cut, total, lossy, sum(len(sp) for sp in all_spans)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="SQuAD v1.1 dev JSON")
    ap.add_argument("--out", help="write results JSON here (default: print only)")
    ap.add_argument("--repeat", type=int, default=1, help="timing runs; best is kept")
    ap.add_argument("--show-failures", action="store_true", help="print output of failed cases")
    args = ap.parse_args()

    paragraphs, docs, bad_answers = load_squad(args.data)
    n_chars = sum(len(ctx) for ctx, _ in paragraphs)
    results = {
        "cases": len(CASES),
        "squad_paragraphs": len(paragraphs),
        "squad_chars": n_chars,
        "squad_unaligned_answers_skipped": bad_answers,
        "python": platform.python_version(),
        "libraries": {},
    }
    for name, factory in LIBRARIES.items():
        split = factory()
        split("Warm up. Load models.")
        failures = score_cases(split)
        secs, cut, total, lossy, n_sents = bench_squad(split, paragraphs, args.repeat)
        merges = sum("\n\n" in d[a:b].strip() for d in docs for a, b in split(d))
        results["libraries"][name] = {
            "version": version(name),
            "case_accuracy": round(1 - len(failures) / len(CASES), 4),
            "cases_passed": len(CASES) - len(failures),
            "failed_cases": {cid: got for cid, got in failures},
            "squad_seconds": round(secs, 3),
            "squad_chars_per_sec": round(n_chars / secs),
            "squad_sentences": n_sents,
            "answers_cut": cut,
            "answers_total": total,
            "answer_cut_rate": round(cut / total, 5),
            "lossy_paragraphs": lossy,
            "paragraph_merges": merges,
        }

    print(
        f"{len(CASES)} tricky cases; SQuAD: {len(paragraphs)} paragraphs, {n_chars:,} chars, "
        f"{next(iter(results['libraries'].values()))['answers_total']:,} distinct answer spans"
    )
    print(
        f"{'library':<10} {'ver':<7} {'cases':>9} {'acc':>6} {'secs':>7} {'chars/s':>10} "
        f"{'sents':>7} {'cut':>5} {'cut%':>6} {'lossy':>5} {'merges':>6}"
    )
    for name, r in results["libraries"].items():
        print(
            f"{name:<10} {r['version']:<7} {r['cases_passed']:>4}/{len(CASES):<4} "
            f"{r['case_accuracy']:>6.1%} {r['squad_seconds']:>7.2f} {r['squad_chars_per_sec']:>10,} "
            f"{r['squad_sentences']:>7} {r['answers_cut']:>5} {r['answer_cut_rate']:>6.2%} "
            f"{r['lossy_paragraphs']:>5} {r['paragraph_merges']:>6}"
        )
    for name, r in results["libraries"].items():
        print(f"{name} fails: {', '.join(r['failed_cases']) or '-'}")
        if args.show_failures:
            expected = {cid: exp for cid, _, exp in CASES}
            for cid, got in r["failed_cases"].items():
                print(f"  {cid}: expected {expected[cid]!r}\n  {' ' * len(cid)}  got      {got!r}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
