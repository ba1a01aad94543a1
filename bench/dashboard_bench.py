"""Dashboard size and time to first render for a large synthetic SAE, in headless Chromium.

    python bench/dashboard_bench.py [--features 16384] [--examples 10] [--context 10] [--runs 3]

Generates feature data for `--features` features, every one with `--examples` examples of 2*context+1 tokens,
writes the dashboard, opens it from file:// in Debian's /usr/bin/chromium (network blocked) and reports:
generation time, file size, time until the page is usable (the list and the first feature drawn:
`window.saeDashboard.ready`, ms since navigation start, and wall time from goto() until then), the time
to open a feature from another chunk, to search, and to filter. Results also go to bench/results/.
"""
import argparse, json, sys, tempfile, time
from pathlib import Path

from sae_nb.dashboard import synthetic_feature_data, generate_dashboard, validate_feature_data

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=16384)
    ap.add_argument("--examples", type=int, default=10)
    ap.add_argument("--context", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    res = {"features": a.features, "examples": a.examples, "window": 2 * a.context + 1}
    t = time.perf_counter(); data = synthetic_feature_data(a.features, a.examples, a.context, dead_fraction=0, partial=False, seed=0); res["synthesise_s"] = time.perf_counter() - t
    t = time.perf_counter(); data = validate_feature_data(data); res["validate_s"] = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "dashboard.html"
        t, c = time.perf_counter(), time.process_time(); generate_dashboard(data, out)
        res["generate_s"], res["generate_cpu_s"] = time.perf_counter() - t, time.process_time() - c
        res["file_mb"] = out.stat().st_size / 2**20
        runs = []
        with sync_playwright() as p:
            for r in range(a.runs):
                ctx = p.chromium.launch_persistent_context(tempfile.mkdtemp(dir=d), executable_path=a.chromium, headless=True,
                                                           args=ARGS, viewport={"width": 1400, "height": 900})
                ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort())
                page = ctx.new_page()
                errors = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                t = time.perf_counter()
                page.goto(out.as_uri())
                page.wait_for_selector("body[data-ready='1']", timeout=120_000)
                wall = time.perf_counter() - t
                ready_ms = page.evaluate("window.saeDashboard.ready")
                last = data["features"][-1]["index"]
                open_ms = page.evaluate(f"""() => {{ const t = performance.now(); location.hash = 'feature-{last}';
                    window.dispatchEvent(new HashChangeEvent('hashchange')); return performance.now() - t; }}""")
                page.wait_for_selector(f"#sae-feature-view[data-feature='{last}']")
                # the page's CSP forbids eval, so Playwright's wait_for_function is out: time inside the page instead
                search_ms = page.evaluate("""() => { const q = document.getElementById('sae-q'); q.value = 'w17';
                    const t = performance.now(); document.getElementById('sae-sort').dispatchEvent(new Event('change'));
                    return performance.now() - t; }""")
                n_hits = page.evaluate("window.saeDashboard.view().length")
                # "search contexts" parses every chunk the first time (the worst case): time that parse
                ctx_ms = page.evaluate("""() => { const d = window.saeDashboard, t = performance.now();
                    for (let i = 0; i < d.n; i++) d.record(i); return performance.now() - t; }""")
                runs.append({"ready_ms_since_navigation": ready_ms, "wall_s_goto_to_ready": wall, "open_last_feature_ms": open_ms,
                             "search_ms": search_ms, "search_hits": n_hits, "parse_all_chunks_ms": ctx_ms, "errors": errors})
                ctx.close()
        res["runs"] = runs
    res["ready_ms_median"] = sorted(r["ready_ms_since_navigation"] for r in runs)[len(runs) // 2]
    print(json.dumps(res, indent=2))
    outdir = Path(__file__).parent / "results"; outdir.mkdir(exist_ok=True)
    (outdir / f"dashboard_{a.features}.json").write_text(json.dumps(res, indent=2))

if __name__ == "__main__":
    main()
