"""README states no result of its own: every result-like number in its prose is one that report.md contains."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "runs" / "embedded" / "report" / "report.md"

# A decimal, a percentage, a ratio ("2.3x") or a value in dB; not a paper reference ("Sect. 2.3", "Fig. 7"), a
# version ("0.26", "v0.1", "Apache-2.0") or a number inside code, links or file names.
NUMBER = re.compile(r"(?<![\w.\-/])(\d+(?:\.\d+)?\s?dB|\d+(?:\.\d+)?\s?%|\d+(?:\.\d+)?x(?!\w)|\d+\.\d+)(?![\w.])")
NOT_RESULTS = re.compile(r"(Sect|App|Fig|Table|Eq|Alg)\.?\s*$|(version|v|scikit-image|torch|PyTorch|Python)\s*$",
                         re.IGNORECASE)


def prose(markdown: str) -> str:
    "The text a reader takes for statements: no code fences, inline code, link targets or image links."
    text = re.sub(r"```.*?```", " ", markdown, flags=re.DOTALL)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)
    return re.sub(r"\]\([^)]*\)", "]", text)


def result_numbers(markdown: str) -> list[str]:
    "The result-like numbers a text states, as written (a '%', 'x' or 'dB' kept)."
    text, out = prose(markdown), []
    for m in NUMBER.finditer(text):
        if not NOT_RESULTS.search(text[max(0, m.start() - 20):m.start()]): out.append(m.group(1))
    return out


def _bare(number: str) -> str:
    return re.sub(r"\s?(%|x|dB)$", "", number)


def test_extractor_finds_results_and_skips_references():
    line = ("CHIMLE reaches 19.0 dB against 20.4 dB, wins on 12% of crops, 2.35x faster (Sect. 2.3, Fig. 7, "
            "scikit-image 0.26, Apache-2.0, `make test 1.5`, 127.0.0.1:8000, [report](runs/embedded/report/report.md))")
    assert result_numbers(line) == ["19.0 dB", "20.4 dB", "12%", "2.35x"]


def test_readme_states_only_numbers_the_report_contains():
    readme = (ROOT / "README.md").read_text()
    numbers = result_numbers(readme)
    if not REPORT.is_file():
        assert not numbers, f"README states {numbers} but there is no report.md to take them from"
        return
    report = REPORT.read_text()
    missing = [n for n in numbers if _bare(n) not in report]
    assert not missing, (f"README states {missing}, which report.md does not contain: results are written by the "
                         "report stage; README links to them")
