/// The console's stylesheet and script, served by the binary itself: no CDN, no build step, so
/// the console works where the servers have no internet.
enum ConsoleAssets {
    static let css = """
    :root { --fg: #1d2329; --muted: #5b6570; --line: #d6dbe0; --bg: #fff; --panel: #f5f7f9; --link: #0b5cad;
            --ok: #1f7a3a; --busy: #1f5fa8; --bad: #b3261e; --idle: #6b7280; --wait: #946200; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
    a { color: var(--link); }
    a:focus, button:focus, input:focus, select:focus { outline: 3px solid #f2b600; outline-offset: 1px; }
    header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1.25rem; padding: .6rem 1rem; background: #16202a; color: #fff; }
    header a { color: #fff; text-decoration: none; padding: .2rem .1rem; }
    header a[aria-current="page"] { border-bottom: 2px solid #f2b600; }
    header .brand { font-weight: 700; letter-spacing: .02em; }
    header nav ul { display: flex; flex-wrap: wrap; gap: 1rem; list-style: none; margin: 0; padding: 0; }
    header .who { margin-left: auto; display: flex; gap: .75rem; align-items: center; font-size: .9rem; }
    header button { background: transparent; color: #fff; border: 1px solid #8a97a3; }
    main { padding: 1rem; max-width: 1200px; margin: 0 auto; }
    h1 { font-size: 1.4rem; margin: .2rem 0 1rem; }
    h2 { font-size: 1.15rem; margin: 1.4rem 0 .5rem; }
    table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
    th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-size: .85rem; color: var(--muted); font-weight: 600; }
    .table-wrap { overflow-x: auto; }
    .panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: .75rem 1rem; margin: .75rem 0; }
    .muted { color: var(--muted); }
    .mono, code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88rem; }
    pre { background: #10161c; color: #e6edf3; padding: .6rem .8rem; border-radius: 4px; overflow-x: auto; white-space: pre-wrap; }
    .badge { display: inline-block; padding: .05rem .45rem; border-radius: 3px; font-size: .8rem; font-weight: 600; color: #fff; }
    .s-ok { background: var(--ok); } .s-busy { background: var(--busy); } .s-bad { background: var(--bad); }
    .s-idle { background: var(--idle); } .s-wait { background: var(--wait); }
    .bar { display: flex; height: 1rem; border-radius: 3px; overflow: hidden; background: #e8ebee; min-width: 8rem; }
    .bar span { display: block; height: 100%; }
    .legend { font-size: .85rem; }
    .legend span { white-space: nowrap; margin-right: .75rem; }
    .legend i { display: inline-block; width: .7rem; height: .7rem; margin-right: .25rem; vertical-align: -1px; border-radius: 2px; }
    form.inline { display: inline; }
    button { font: inherit; padding: .3rem .75rem; border-radius: 4px; border: 1px solid #8a97a3; background: #fff; cursor: pointer; }
    h2 button { font-size: .85rem; font-weight: 400; vertical-align: middle; padding: .15rem .6rem; }
    button.danger { border-color: var(--bad); color: var(--bad); }
    input[type=text], input[type=password], select { font: inherit; padding: .35rem .5rem; border: 1px solid #8a97a3; border-radius: 4px; }
    .search { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
    .search label { display: flex; flex-direction: column; font-size: .85rem; color: var(--muted); }
    .search input[name=selector] { min-width: 22rem; }
    .error { border: 1px solid var(--bad); background: #fdecea; color: #6b1510; padding: .6rem .8rem; border-radius: 4px; margin: .75rem 0; }
    .error pre { background: #fff; color: #6b1510; margin: .4rem 0 0; }
    .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 1rem; }
    figure { margin: 0; }
    .chart svg { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background: #fff; }
    .pager { display: flex; gap: 1rem; align-items: center; }
    .signin { max-width: 28rem; margin: 3rem auto; }
    .signin input { width: 100%; margin: .3rem 0 .8rem; }
    .live { font-size: .8rem; }
    @media (max-width: 640px) {
      main { padding: .6rem; }
      header .who { margin-left: 0; }
      .search input[name=selector] { min-width: 0; width: 100%; }
      th, td { padding: .3rem .3rem; }
    }
    """

    /// Live updates: on each `changed` event the page fetches its own main part again and puts
    /// it in place. Without JavaScript the pages are whole and a reload shows what is new.
    static let js = """
    (function () {
      var main = document.querySelector("main[data-live]");
      if (!main || !window.EventSource) { return; }
      var status = document.getElementById("live-status");
      var source = new EventSource("/events");
      var busy = false, again = false;
      function refresh() {
        if (busy) { again = true; return; }
        busy = true;
        fetch(window.location.pathname + window.location.search, { headers: { "X-Console-Part": "main" }, credentials: "same-origin" })
          .then(function (response) {
            // The session ended: the whole page goes to sign in.
            if (response.redirected || response.status === 401) { window.location.reload(); return null; }
            return response.ok ? response.text() : null;
          })
          .then(function (html) {
            if (html !== null) {
              var focused = document.activeElement && document.activeElement.id;
              main.innerHTML = html;
              if (focused) { var element = document.getElementById(focused); if (element) { element.focus(); } }
            }
          })
          .finally(function () { busy = false; if (again) { again = false; refresh(); } });
      }
      source.addEventListener("changed", refresh);
      source.addEventListener("open", function () { if (status) { status.textContent = "live"; } });
      source.addEventListener("error", function () { if (status) { status.textContent = "reconnecting…"; } });
    })();
    """
}
