"""Shared fixtures: a tiny raw folder with every catalog variant, and its processed tables.

Other test modules may reuse ``tiny_raw_dir`` (a raw folder) and ``processed_tiny``
(the ProjectPaths of a tmp project whose ``data/processed`` was built from it;
``RECSYS_ROOT`` points there for the test).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys_utils.paths import ProjectPaths, project_paths

# Every JVM the tests start (Spark's driver, a standalone master, workers, executors: each a
# child of this process or of a kernel it starts) lives seconds on a few thousand ratings,
# too short for HotSpot's optimising compiler to pay back its compile time: the client
# compiler alone (TieredStopAtLevel=1) ran tests/test_scale_out.py on 2 cores in 162 CPU-s
# instead of 265 (wall 89 s, not 138), with the same results. Its frames are larger, so
# Spark's deep plans need a larger thread stack (StackOverflowError at the default 1 MB).
# Tests only: a user's long Spark job keeps HotSpot's defaults. A value set outside wins.
os.environ.setdefault("JAVA_TOOL_OPTIONS", "-XX:TieredStopAtLevel=1 -Xss16m")

NETFLIX_CSV = """\
show_id,type,title,director,cast,country,date_added,release_year,rating,duration,listed_in,description
s1,Movie,The Matrix,"Lana Wachowski, Lilly Wachowski","Keanu Reeves, Laurence Fishburne",United States,2021-09-25,1999,R,136 min,"Action & Adventure, Sci-Fi & Fantasy",A hacker learns the truth.
s2,TV Show,Blood & Water,,"Ama Qamata, Khosi Ngema",South Africa," September 24, 2021",2021,TV-MA,2 Seasons,"International TV Shows, TV Dramas",A teen sets out to prove a swimmer is her sister.
s3,Movie,Dick Johnson Is Dead,Kirsten Johnson,,United States,25-Sep-21,2020,PG-13,90 min,Documentaries,A filmmaker stages her father's death.
s4,Movie,Louis C.K. 2017,Louis C.K.,Louis C.K.,United States,"April 4, 2017",2017,74 min,,Movies,Louis C.K. muses on religion.
s5,TV Show,Jann,,,Canada,2021-01-29,2019,TV-PG,1 Season,Comedy,"In JANN, a singer
plays a fictionalized version of herself."
s6,Movie,"Broken Quote,Someone,,,2021-09-25,2020,PG,95 min,Dramas,A row whose quote never closes.
s7,Movie,Short Row
s1,Movie,The Matrix (copy),,,,2021-09-25,1999,R,136 min,Action,The same id again.
s8,Movie,Unrated Film,,,India,,2018,,105 min,Dramas,No rating and no date.
s9,Movie,Léon: The Professional,Luc Besson,Jean Reno,France,2020-01-01,1994,R,110 min,Dramas,A hitman takes in a girl.
s10,Movie,Bad Date,,,,sometime in 2021,2019,PG,80 min,Comedies,Unparseable date.
"""

AMAZON_CSV = """\
show_id,type,title,director,cast,country,date_added,release_year,rating,duration,genre,platform
s1,Movie,The Matrix,Lana Wachowski,Keanu Reeves,United States,"March 30, 2021",1999,,136 min,"Action, Science Fiction",amazon_prime
s2,TV Show,Some Show,,,,,2015,TV-14,3 Seasons,Drama,amazon_prime
s3,Movie,Toy Story,John Lasseter,Tom Hanks,United States,2021-03-30,1995,G,81 min,"Animation, Kids",amazon_prime
s4,Movie,Bad Year,,,,,19x9,PG,90 min,Drama,amazon_prime
s5,Documentary,Odd Type,,,,,2010,PG,90 min,Documentary,amazon_prime
s6,Movie,Trailing Comma,,,,,2012,13,88 min,Drama,amazon_prime,
"""

#: Titles of the tiny catalogs that survive cleaning (ids), in platform order.
TINY_KEPT_IDS = ["as1", "as2", "as3", "as6", "ns1", "ns2", "ns3", "ns4", "ns5", "ns8", "ns9"]
#: Rejected catalog rows: (file, line, reason).
TINY_TITLE_REJECTS = {
    ("amazon_prime_titles.csv", 5, "non-numeric release_year"),
    ("amazon_prime_titles.csv", 6, "unknown type"),
    ("netflix_titles.csv", 8, "bad quoting"),
    ("netflix_titles.csv", 9, "wrong number of fields"),
    ("netflix_titles.csv", 10, "duplicate id"),
    ("netflix_titles.csv", 13, "unparseable date_added"),
}
_T0 = 1_600_000_000
_ITEMS = ["as1", "as2", "as3", "as6", "ns1", "ns2", "ns3", "ns4", "ns5", "ns8", "ns9"]


def tiny_ratings_csv() -> str:
    """Good ratings (8 users x 6 items) followed by one row of each kind of bad row."""
    rows = ["userId,rating,timestamp,movieId"]
    for user in range(1, 9):
        for k in range(6):
            item = _ITEMS[(user + 2 * k) % len(_ITEMS)]
            score = 0.5 + ((user * 7 + k * 3) % 10) * 0.5
            rows.append(f"{user},{score:g},{_T0 + user * 1000 + k},{item}")
    rows += [
        "abc,4.0,1600000000,ns1",        # non-numeric userId
        "1,7.0,1600000000,ns1",          # score outside 0.5-5
        "1,4.0,notatime,ns1",            # unparseable timestamp
        "1,4.0,1600000000,zz99",         # unknown movieId
        "2,3.5",                         # short row
        rows[1],                         # exact duplicate of the first rating
        '3,"4.0,1600000000,ns1',         # bad quoting
    ]
    return "\n".join(rows) + "\n"


#: Rejected rating rows by reason in ``tiny_ratings_csv`` (duplicates apart).
TINY_RATING_REJECTS = {"non-numeric userId": 1, "score outside 0.5-5": 1,
                       "unparseable timestamp": 1, "unknown movieId": 1,
                       "wrong number of fields": 1, "bad quoting": 1}
TINY_GOOD_RATINGS = 48


def write_tiny_raw(raw: Path, ratings: bool = True) -> Path:
    """Write the tiny catalogs (and the ratings file) into ``raw``; return ``raw``."""
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "netflix_titles.csv").write_text(NETFLIX_CSV, encoding="utf-8")
    (raw / "amazon_prime_titles.csv").write_text(AMAZON_CSV, encoding="utf-8")
    (raw / "README.md").write_text("not a catalog\n", encoding="utf-8")
    if ratings:
        (raw / "ratings").mkdir(exist_ok=True)
        (raw / "ratings" / "ratings.csv").write_text(tiny_ratings_csv(), encoding="utf-8")
    return raw


@pytest.fixture
def tiny_raw_dir(tmp_path: Path) -> Path:
    """A raw folder: netflix (Kaggle layout) + amazon_prime (``genre``, no description,
    extra ``platform`` column) catalogs with every variant and bad row, and
    ``ratings/ratings.csv`` with good and bad ratings."""
    return write_tiny_raw(tmp_path / "raw")


@pytest.fixture
def processed_tiny(tiny_raw_dir: Path, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> ProjectPaths:
    """A tmp project whose processed tables were built from ``tiny_raw_dir`` (streaming).

    ``RECSYS_ROOT`` points at it, so code called with ``paths=None`` finds it too.
    """
    from recsys_utils.data.cleaning import build_processed

    paths = project_paths(tmp_path / "project").ensure()
    monkeypatch.setenv("RECSYS_ROOT", str(paths.root))
    build_processed(raw_dir=tiny_raw_dir, source="streaming", paths=paths, verbose=False)
    return paths


#: Modules whose tests take minutes (whole pipeline runs, a Spark cluster): collected first.
#: With worksteal (`make unit`) they fall in worker 0's first slice and run one after another
#: from the start, while the other workers share the rest, so none of them is left to end
#: the run alone. Starting one on each worker instead was slower on 2 cores (626 s against
#: 579 s for the whole suite): the machine is busy either way, and four at once contend.
LONGEST_FIRST = ("test_pipeline_integration", "test_scale_out_cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rest(item: pytest.Item) -> bool:
        module = getattr(item, "module", None)
        return getattr(module, "__name__", "") not in LONGEST_FIRST

    items.sort(key=rest)  # stable: the others keep their order


@pytest.fixture(autouse=True)
def _not_this_project(tmp_path_factory: pytest.TempPathFactory,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Code called with ``paths=None`` finds an empty project, never this repository's
    ``data/`` and ``outputs/``: a clean clone has none, a developer's own runs leave them
    filled, and a test must not pass or fail by which. Tests that need a project set
    ``RECSYS_ROOT``."""
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path_factory.mktemp("no_project")))


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something is listening on (for the busy-port errors)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])
