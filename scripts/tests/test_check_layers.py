"""Tests of scripts/check_layers.py on tiny trees written for each test: a
layered crate and package that pass, and ones with an arrow back up, a
circle, a private import, test code and literals that must not count.

Run: python3 -m unittest discover -s scripts/tests (`make test-scripts`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "check_layers.py"
_spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
check_layers = importlib.util.module_from_spec(_spec)
sys.modules["check_layers"] = check_layers
_spec.loader.exec_module(check_layers)


class Trees(unittest.TestCase):
    """Each test writes its files (path -> text) under a fresh directory."""

    def tree(self, files: dict[str, str]) -> Path:
        root = Path(self.enterContext(tempfile.TemporaryDirectory()))
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return root


# A crate laid out by stage: config, then collect/ (a folder whose mod.rs only
# declares and re-exports), then http and daemon.
CRATE = {
    "src/lib.rs": """
        //! The crate.
        pub mod config;
        pub mod collect;
        pub mod http;
        pub mod daemon;

        pub use daemon::run;
    """,
    "src/main.rs": """
        fn main() { gestor::run(); }
    """,
    "src/config.rs": """
        pub struct Config;
    """,
    "src/collect/mod.rs": """
        mod procfs;
        mod snapshot;

        pub use procfs::scan;
        pub use snapshot::Snapshot;
    """,
    "src/collect/snapshot.rs": """
        pub struct Snapshot;
    """,
    "src/collect/procfs.rs": """
        use super::Snapshot;
        use crate::config::Config;

        pub fn scan(_: &Config) -> Snapshot { Snapshot }
    """,
    "src/http.rs": """
        pub struct Server;
    """,
    "src/daemon.rs": """
        use crate::collect::{scan, Snapshot};
        use crate::http::Server;
        use crate::{config::{self, Config as C}};

        pub fn run() {
            let _s: Snapshot = scan(&C);
            let _c: config::Config = crate::config::Config;
        }
    """,
}


class RustTest(Trees):
    def check(self, changes: dict[str, str]):
        root = self.tree({**CRATE, **changes})
        return check_layers.check_rust(root / "src", "src")

    def test_a_layered_crate_passes_with_the_edges_of_its_files(self):
        report = self.check({})
        assert report.problems == []
        assert report.layers == 4
        assert report.edges == {
            "src/collect/mod.rs": {"src/collect/procfs.rs", "src/collect/snapshot.rs"},
            # super::Snapshot is followed through mod.rs's `pub use` to its file.
            "src/collect/procfs.rs": {"src/collect/snapshot.rs", "src/config.rs"},
            "src/daemon.rs": {
                "src/collect/procfs.rs",
                "src/collect/snapshot.rs",
                "src/config.rs",
                "src/http.rs",
            },
        }

    def test_a_use_of_a_module_listed_later_is_an_arrow_back_up(self):
        report = self.check(
            {
                "src/config.rs": """
                    pub struct Config;

                    pub fn port() -> u16 {
                        let _ = crate::http::Server;
                        1
                    }
                """
            }
        )
        assert report.problems == [
            "arrow back up: src/config.rs -> http (listed after config in lib.rs):"
            " crate::http::Server at line 4"
        ]

    def test_files_of_one_folder_using_each_other_are_a_circle(self):
        report = self.check(
            {
                "src/collect/snapshot.rs": """
                    use super::procfs::scan;

                    pub struct Snapshot;
                """,
            }
        )
        assert report.problems == [
            "circle: src/collect/procfs.rs -> src/collect/snapshot.rs -> src/collect/procfs.rs"
        ]

    def test_a_circle_across_modules_is_named_beside_its_arrow_back_up(self):
        report = self.check({"src/config.rs": "use crate::collect::scan;\npub struct Config;\n"})
        assert report.problems == [
            "arrow back up: src/config.rs -> collect (listed after config in lib.rs):"
            " crate::collect::scan at line 1",
            "circle: src/collect/procfs.rs -> src/config.rs -> src/collect/procfs.rs",
        ]

    def test_the_circles_through_one_file_are_each_named(self):
        report = self.check({"src/config.rs": "use crate::daemon::run;\npub struct Config;\n"})
        assert report.problems[1:] == [
            "circle: src/config.rs -> src/daemon.rs -> src/config.rs",
            "circle: src/collect/procfs.rs -> src/config.rs -> src/daemon.rs"
            " -> src/collect/procfs.rs",
        ]

    def test_test_code_comments_and_strings_do_not_count(self):
        report = self.check(
            {
                "src/config.rs": """
                    //! Not crate::daemon::run either.
                    pub struct Config;
                    /* crate::daemon::run /* nested */ crate::daemon::run */
                    pub const HELP: &str = "see crate::daemon::run";
                    pub const RAW: &str = r#"crate::daemon::run "quoted""#;
                    pub fn quote<'a>(_: &'a str) -> char { '"' }

                    #[cfg(test)]
                    mod helpers;

                    #[cfg(test)]
                    fn only_in_tests() { crate::daemon::run(); }

                    #[cfg(test)]
                    mod tests {
                        use crate::daemon::run;
                    }
                """,
                "src/config/helpers.rs": "mod deep;\nuse crate::daemon::run;\n",
                "src/config/helpers/deep.rs": "use crate::daemon::run;\n",
                "src/collect/mod.rs": CRATE["src/collect/mod.rs"] + "mod fixtures;\n",
                "src/collect/fixtures.rs": "#![cfg(test)]\nuse crate::daemon::run;\n",
            }
        )
        assert report.problems == []
        assert "src/config.rs" not in report.edges

    def test_a_char_literal_does_not_hide_the_code_after_it(self):
        # Read as a string, the '"' would hide the rest of the file.
        code = "pub struct Config;\nfn q() -> char { '\"' }\nuse crate::http::Server;\n"
        report = self.check({"src/config.rs": code})
        assert report.problems == [
            "arrow back up: src/config.rs -> http (listed after config in lib.rs):"
            " crate::http::Server at line 3"
        ]

    def test_a_module_missing_from_lib_rs_is_named(self):
        report = self.check({"src/extra.rs": "pub fn f() {}\n"})
        assert report.problems == ["src/extra.rs: `extra` is not declared in lib.rs"]


class UseTreeTest(unittest.TestCase):
    def test_grouped_nested_renamed_self_and_glob(self):
        paths = check_layers.use_tree("crate::{a, b::{c as d, self, e::*}, f}")
        assert paths == [
            (["crate", "a"], None),
            (["crate", "b", "c"], "d"),
            (["crate", "b"], None),
            (["crate", "b", "e", "*"], None),
            (["crate", "f"], None),
        ]

    def test_a_plain_path_and_a_leading_colon_colon(self):
        assert check_layers.use_tree("super::super::x::Y") == [(["super", "super", "x", "Y"], None)]
        assert check_layers.use_tree("::std::fmt") == [(["std", "fmt"], None)]


class CircleTest(unittest.TestCase):
    def test_each_circle_once_from_its_first_file_shortest_first(self):
        edges = {"b": {"a", "c"}, "a": {"b"}, "c": {"d"}, "d": {"b"}, "e": {"a"}}
        assert check_layers.circles(edges) == [["a", "b", "a"], ["b", "c", "d", "b"]]

    def test_no_circle_in_a_layered_graph(self):
        assert check_layers.circles({"a": {"b", "c"}, "b": {"c"}}) == []


PACKAGE = {
    "app/__init__.py": """
        __version__ = "1"
        LAYERS = (("models",), ("db", "render", "graphs"), ("routers",), ("main",))
    """,
    "app/models.py": "MAX = 1\n",
    "app/db.py": "from .models import MAX\n",
    "app/graphs.py": "from . import db\n",
    "app/render.py": """
        def draw():
            from .graphs import db

            return db
    """,
    "app/routers/__init__.py": "from . import logs\n",
    "app/routers/logs.py": """
        from .. import __version__
        from ..db import MAX
        from app.render import draw
    """,
    "app/main.py": "from .routers import logs\nimport app.models\n",
}


class PythonTest(Trees):
    def check(self, changes: dict[str, str]):
        root = self.tree({**PACKAGE, **changes})
        return check_layers.check_python(root / "app", "app")

    def test_a_layered_package_passes_with_its_edges(self):
        report = self.check({})
        assert report.problems == []
        assert report.edges == {
            "app/db.py": {"app/models.py"},
            "app/graphs.py": {"app/db.py"},
            "app/render.py": {"app/graphs.py"},
            "app/routers/__init__.py": {"app/routers/logs.py"},
            "app/routers/logs.py": {"app/__init__.py", "app/db.py", "app/render.py"},
            "app/main.py": {"app/routers/logs.py", "app/models.py"},
        }

    def test_an_import_from_a_later_layer_is_an_arrow_back_up(self):
        report = self.check({"app/models.py": "MAX = 1\n\n\ndef f():\n    from .db import MAX\n"})
        assert report.problems == [
            "arrow back up: app/models.py:5 imports app/db.py (layer 2 of LAYERS, above its own 1)",
            "circle: app/db.py -> app/models.py -> app/db.py",
        ]

    def test_a_lazy_import_closes_a_circle_all_the_same(self):
        report = self.check({"app/graphs.py": "from . import db\nfrom .render import draw\n"})
        assert report.problems == ["circle: app/graphs.py -> app/render.py -> app/graphs.py"]

    def test_a_private_name_of_another_module_is_refused(self):
        report = self.check({"app/main.py": "from .db import _connect\n"})
        assert report.problems == ["private name: app/main.py:1 imports _connect from app/db.py"]

    def test_a_module_in_no_layer_and_a_stale_layer_name(self):
        report = self.check(
            {
                "app/extra.py": "",
                "app/__init__.py": 'LAYERS = (("models", "gone"), ("db", "render", "graphs"),'
                ' ("routers",), ("main",))\n',
            }
        )
        assert report.problems == [
            "LAYERS names gone, which is no module",
            "app/extra.py: in no layer of LAYERS (app/__init__.py)",
        ]


class CommandLineTest(Trees):
    def run_main(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = check_layers.main(list(args))
        return status, out.getvalue()

    def test_passes_prints_one_line_per_tree_and_the_graph_on_demand(self):
        root = self.tree({**CRATE, **PACKAGE})
        status, out = self.run_main("--src", str(root / "src"), "--package", str(root / "app"))
        assert status == 0, out
        assert out.count("no circle, no arrow back up") == 2, out
        status, out = self.run_main(
            "--graph", "--src", str(root / "src"), "--package", str(root / "app")
        )
        assert status == 0, out
        assert "src/daemon.rs -> src/config.rs\n" in out, out
        assert "app/main.py -> app/models.py\n" in out, out

    def test_fails_naming_the_problem(self):
        root = self.tree({**CRATE, **PACKAGE, "src/config.rs": "use crate::http::Server;\n"})
        status, out = self.run_main("--src", str(root / "src"), "--package", str(root / "app"))
        assert status == 1
        assert "src: arrow back up: src/config.rs -> http" in out, out


if __name__ == "__main__":
    unittest.main()
