"""`flowtools view` in a real browser: headless Chromium (Debian's chromium and chromium-driver) driven
by Selenium. The page loads without console errors, shows the graph's node count, shows a node's
signature on hover and its runs on click, finds nodes by id and downloads the selection as a graph
that `SaddleGraph.from_json` reads; a sweep store's page switches groups and draws the runs' losses.

Set FLOWTOOLS_SCREENSHOTS=DIR to keep the screenshots (docs/figures/view/ holds the documented ones)."""

import json
import os
import pathlib
import shutil
import time

import numpy as np
import pytest

from flowtools.graph import SaddleGraph
from flowtools.view import view

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

try:
    import selenium  # noqa: F401

    _missing = [p for p in (CHROMIUM, DRIVER) if not os.path.exists(p)]
    _reason = (f"{' and '.join(_missing)} not installed (apt-get install chromium chromium-driver)"
               if _missing else "")
except ImportError:
    _reason = "selenium is not installed (pip install selenium)"

pytestmark = [pytest.mark.browser, pytest.mark.skipif(bool(_reason), reason=_reason or "ok")]


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1300,1000"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()


def _open(drv, path, timeout=20.0) -> float:
    """Load the page and wait until Bokeh has drawn the graph; returns the seconds it took."""
    drv.get_log("browser")  # drop earlier pages' messages
    t0 = time.perf_counter()
    drv.get(pathlib.Path(path).resolve().as_uri())
    while time.perf_counter() - t0 < timeout:
        if drv.execute_script(_READY):
            return time.perf_counter() - t0
        time.sleep(0.02)
    raise AssertionError(f"the page {path} did not render within {timeout} s")


_READY = """
if (!window.Bokeh || !Bokeh.documents.length || !Bokeh.index.roots.length) return false;
const m = Bokeh.documents[0].get_model_by_name('graph');
const all = []; const walk = v => { all.push(v); for (const c of (v.children ? v.children() : [])) walk(c); };
for (const r of Bokeh.index.roots) walk(r);
const v = all.find(x => x.model === m);
return v != null && v.el.getBoundingClientRect().width > 0 && v._has_finished === true;
"""

_MODEL = "return Bokeh.documents[0].get_model_by_name(arguments[0])"


def _node_xy(drv, node) -> tuple[float, float]:
    """Viewport coordinates of a node's marker."""
    return tuple(drv.execute_script("""
        const m = Bokeh.documents[0].get_model_by_name('graph');
        const all = [];
        const walk = v => { all.push(v); for (const c of (v.children ? v.children() : [])) walk(c); };
        for (const r of Bokeh.index.roots) walk(r);
        const v = all.find(x => x.model === m), d = Bokeh.documents[0].get_model_by_name('nodes').data;
        const k = d.id.indexOf(arguments[0]), r = v.el.getBoundingClientRect();
        return [r.left + v.frame.x_scale.compute(d.x[k]), r.top + v.frame.y_scale.compute(d.y[k])];
    """, node))


def _visible_text(drv) -> str:
    """The page's rendered text, inside Bokeh's shadow roots included."""
    return drv.execute_script("""
        const out = [];
        const skip = new Set(['SCRIPT', 'STYLE', 'TEMPLATE']);
        const walk = n => {
            if (n.nodeType === 1 && (skip.has(n.nodeName) || getComputedStyle(n).display === 'none')) return;
            if (n.shadowRoot) walk(n.shadowRoot);
            for (const c of n.childNodes) { if (c.nodeType === 3) out.push(c.textContent); else walk(c); }
        };
        walk(document.body);
        return out.join(' ');
    """)


def _pointer(drv, x, y, click=False):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(drv)
    actions.pointer_action.move_to_location(int(round(x)), int(round(y)))
    if click:
        actions.pointer_action.click()
    actions.perform()


def _errors(drv) -> list:
    return [e for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def _screenshot(drv, name, tmp_path):
    target = pathlib.Path(os.environ.get("FLOWTOOLS_SCREENSHOTS") or tmp_path) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    assert drv.save_screenshot(str(target)) and target.stat().st_size > 10_000


def synthetic_graph(n_nodes=12, n_runs=6, seed=0) -> SaddleGraph:
    """A graph like an ensemble's: Morse indices 0–4, losses over three decades, runs from high-index
    saddles down to two minima, every node with a stored spectrum."""
    rng = np.random.default_rng(seed)
    g = SaddleGraph()
    ids = []
    for i in range(n_nodes):
        idx = 0 if i < 2 else 1 + i % 4
        lam = np.sort(np.concatenate([-rng.random(idx) - 0.1, rng.random(10 - idx) + 0.1]))
        ids.append(g.add_node(fingerprint=rng.standard_normal(6), signature=(idx, 0, 10 - idx),
                              kind="minimum" if idx == 0 else "saddle", loss=10.0 ** (-4 + 3.5 * rng.random())
                              if idx else 1e-5 * (i + 1), theta=rng.standard_normal(10), eigenvalues=lam,
                              grad_norm=1e-12, reduces_to="1-2-1" if idx == 1 else ""))
    for n in ids[:2]:
        g.graph.nodes[n]["attractor"] = True
    g.graph.graph["loss_label"] = "training loss"
    for r in range(n_runs):
        seq = sorted(rng.choice(ids[2:], size=3, replace=False),
                     key=lambda n: -g.graph.nodes[n]["morse_index"])
        g.add_itinerary(seq + [ids[r % 2]], [(float(k), k + 0.5) for k in range(4)], method="gradient_flow",
                        run=f"seed{r}")
    return g


def test_graph_page_hover_click_search_download(browser, tmp_path):
    g = synthetic_graph()
    g.to_json(tmp_path / "g.json")
    page = view(tmp_path / "g.json")
    assert page == tmp_path / "g.html"
    _open(browser, page)
    assert _errors(browser) == []
    text = _visible_text(browser)
    n, m = g.graph.number_of_nodes(), g.graph.number_of_edges()
    assert f"{n} nodes, {m} edges, 6 runs" in text
    # hover: the tooltip shows the node's signature (not on the page before)
    node = max(g.graph.nodes, key=lambda v: g.graph.nodes[v]["morse_index"])
    a = g.graph.nodes[node]
    sig = "(" + ", ".join(str(s) for s in a["signature"]) + ")"
    assert sig not in text
    _pointer(browser, *_node_xy(browser, node))
    time.sleep(0.3)
    assert sig in _visible_text(browser)
    assert f"node {node}: saddle, signature {sig}" in browser.execute_script(_MODEL + ".text", "hover")
    # click: the runs through the node are listed, its spectrum drawn
    _pointer(browser, *_node_xy(browser, node), click=True)
    time.sleep(0.3)
    runs = sorted({r for u, v, e in g.graph.edges(data=True) if node in (u, v) for r in e["runs"]})
    assert runs
    text = _visible_text(browser)
    assert f"{len(runs)} run(s) through it" in text and all(r in text for r in runs)
    lam = browser.execute_script(_MODEL + ".data.lam", "spectrum")
    assert np.allclose(lam, a["eigenvalues"])
    _screenshot(browser, "graph.png", tmp_path)
    # search by id, then download the selection (a box of two nodes) as a graph file
    browser.execute_script(_MODEL + ".value = arguments[1]", "search", "n1")
    time.sleep(0.2)
    ids = browser.execute_script(_MODEL + ".data.id", "nodes")
    assert browser.execute_script(_MODEL + ".selected.indices", "nodes") == [ids.index("n1")]
    browser.execute_script(_MODEL + ".value = arguments[1]", "search", "n999")
    time.sleep(0.2)
    assert "No node n999" in _visible_text(browser)
    pick = [ids.index(v) for v in (node, *g.graph.successors(node))]
    browser.execute_script(_MODEL + ".selected.indices = arguments[1]", "nodes", pick)
    browser.execute_script(_CLICK_BUTTON, "download")  # the button itself, in its shadow root
    time.sleep(0.2)
    data = json.loads(browser.execute_script("return window.flowtools_download"))
    (tmp_path / "sub.json").write_text(json.dumps(data))
    sub = SaddleGraph.from_json(tmp_path / "sub.json")
    assert set(sub.graph.nodes) == {node, *g.graph.successors(node)}
    assert set(sub.graph.edges) == {(node, v) for v in g.graph.successors(node)}
    assert sub.graph.nodes[node]["eigenvalues"] == a["eigenvalues"]
    assert _errors(browser) == []


_Y_LABEL = "return Bokeh.documents[0].get_model_by_name('graph').left[0].axis_label"

_CLICK_BUTTON = """
const m = Bokeh.documents[0].get_model_by_name(arguments[0]);
const all = []; const walk = v => { all.push(v); for (const c of (v.children ? v.children() : [])) walk(c); };
for (const r of Bokeh.index.roots) walk(r);
all.find(x => x.model === m).shadow_el.querySelector('button').click();
"""


def test_sweep_store_page_groups_basins_and_run_curves(browser, tmp_path):
    import flowtools.sweeps as S

    configs = S.grid(seed=[0], width=[1, 2], activation="tanh", d_in=2, n=30, t1=1e4)
    res = S.sweep("flow_itinerary", configs, tmp_path / "store", workers=0, progress=False)
    assert res.n_run == 2 and not res.errors
    page = view(tmp_path / "store")
    _open(browser, page)
    assert _errors(browser) == []
    g = S.merged_graph(tmp_path / "store")
    assert f"{g.graph.number_of_nodes()} nodes" in _visible_text(browser)
    assert "Wilson interval" in _visible_text(browser)
    assert browser.execute_script(_Y_LABEL).startswith("training loss")
    options = browser.execute_script(_MODEL + ".options", "group")
    assert options[0].startswith("all points (2 runs)") and any(o.startswith("width = 2") for o in options)
    # one group: the node count shown is that of the group's own points
    width2 = [o for o in options if "width = 2" in o][0]
    browser.execute_script(_MODEL + ".value = arguments[1]", "group", width2)
    time.sleep(0.3)
    seq = [n for n in S.open_results(tmp_path / "store")["visit_node"].values[1] if str(n)]
    assert f"{len(set(seq))} nodes" in browser.execute_script(_MODEL + ".text", "counts")
    cell = '<td style="padding:1px 6px;text-align:left">{}</td>'
    for i, width in enumerate((1, 2)):  # each group's basin, named by the page's node ids
        group = [o for o in options if f"width = {width}" in o][0]
        browser.execute_script(_MODEL + ".value = arguments[1]", "group", group)
        time.sleep(0.2)
        end = [n for n in S.open_results(tmp_path / "store")["visit_node"].values[i] if str(n)][-1]
        basins = browser.execute_script(_MODEL + ".text", "basins")
        assert "over 1 runs" in basins and cell.format(end) in basins
    # click the group's first visited node: its run's losses at each visit are drawn
    _pointer(browser, *_node_xy(browser, seq[0]), click=True)
    time.sleep(0.3)
    xs = browser.execute_script(_MODEL + ".data.xs", "curves")
    assert len(xs) == 1 and len(xs[0]) == 2 * len(seq)
    assert "point 1: width=2, seed=0" in _visible_text(browser)
    _screenshot(browser, "sweep.png", tmp_path)
    assert _errors(browser) == []


def test_load_time_and_size_at_174_nodes(browser, tmp_path):
    """The width study's merged graph has 174 nodes: the page must stay small and quick to open."""
    g = synthetic_graph(n_nodes=174, n_runs=60, seed=1)
    g.to_json(tmp_path / "g174.json")
    t0 = time.perf_counter()
    page = view(tmp_path / "g174.json")
    write = time.perf_counter() - t0
    size = page.stat().st_size
    load = min(_open(browser, page) for _ in range(2))
    print(f"174 nodes: page {size / 1e6:.2f} MB, written in {write:.2f} s, loads in {load:.2f} s")
    assert _errors(browser) == []
    assert f"{g.graph.number_of_nodes()} nodes" in _visible_text(browser)
    assert size <= 10e6
    assert load <= 3.0


def _check_page(drv, page, group) -> dict:
    """Open `page` and check what every page must do: no console errors, the node count of its first
    group's graph shown, and, where it has nodes, a node's signature on hover and its runs on click.
    Returns the load time and the node checked."""
    graph = group["graph"]
    load = _open(drv, page)
    assert _errors(drv) == []
    n = graph.graph.number_of_nodes()
    assert f"{n} nodes" in drv.execute_script(_MODEL + ".text", "counts")
    out = dict(load=load, node=None)
    if not n:
        return out
    # the runs through each node: a store's runs by their visits, a graph file's by its edges
    if group["runs"]:
        through = {v: [r["name"] for r in group["runs"] if v in r["nodes"]] for v in graph.graph.nodes}
    else:
        g = graph.graph
        through = {v: sorted({r for e in (*g.in_edges(v, data=True), *g.out_edges(v, data=True))
                              for r in e[2].get("runs", [])}) for v in g.nodes}
    node = max(graph.graph.nodes, key=lambda v: (bool(through[v]), graph.graph.nodes[v].get("visits", 0)))
    sig = "(" + ", ".join(str(s) for s in graph.graph.nodes[node]["signature"]) + ")"
    _pointer(drv, *_node_xy(drv, node))
    time.sleep(0.3)
    assert f"node {node}: {graph.graph.nodes[node]['kind']}, signature {sig}" in \
        drv.execute_script(_MODEL + ".text", "hover")
    _pointer(drv, *_node_xy(drv, node), click=True)
    time.sleep(0.3)
    text = _visible_text(drv)
    if through[node]:
        assert f"{len(through[node])} run(s) through it" in text
        assert all(r in text for r in through[node][:40])  # the page lists 40, then a count
    assert _errors(drv) == []
    out["node"] = node
    return out


def test_width_study_store(browser, tmp_path):
    """A real width-study store, named by FLOWTOOLS_VIEW_STORE (copied first: the page is written beside
    it): size, load time, hover and click; the screenshot is docs/figures/view/width_study.png."""
    src = os.environ.get("FLOWTOOLS_VIEW_STORE")
    if not src:
        pytest.skip("FLOWTOOLS_VIEW_STORE is not set (a width-study sweep store)")
    import flowtools.sweeps as S

    store = tmp_path / "store"
    shutil.copytree(src, store)
    t0 = time.perf_counter()
    page = view(store)
    write = time.perf_counter() - t0
    group = _all_points(store)
    graph = group["graph"]
    res = _check_page(browser, page, group)
    loads = [res["load"]] + [_open(browser, page) for _ in range(2)]
    groups = browser.execute_script(_MODEL + ".options", "group")
    size = page.stat().st_size
    merged = S.read_store(store).graph
    print(f"width-study store: {merged.graph.number_of_nodes()} merged nodes, "
          f"{graph.graph.number_of_nodes()} shown, page {size / 1e6:.2f} MB, written in {write:.1f} s, "
          f"loads in {min(loads):.2f}-{max(loads):.2f} s, {len(groups)} groups")
    _check_page(browser, page, group)
    _screenshot(browser, "width_study.png", tmp_path)
    assert max(loads) <= 3.0
    # the page's "all points" group is the store's merged graph (graph.json), node for node
    assert sorted(graph.graph.nodes) == sorted(merged.graph.nodes) == sorted(
        SaddleGraph.from_json(store / "graph.json").graph.nodes)


def _all_points(store):
    from flowtools.view import load_groups

    return load_groups(store)[0][0]
