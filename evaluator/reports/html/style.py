"""The page's look: styles, the sorting and tooltip script, the colours of runs and of the
heatmap scale (the PNG export uses the same ones), and HTML escaping."""

from __future__ import annotations

import html

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
# Heatmap colour stops (dark blue -> teal -> yellow); readable in grey print too.
STOPS = [(0.0, (68, 1, 84)), (0.25, (59, 82, 139)), (0.5, (33, 145, 140)),
         (0.75, (94, 201, 98)), (1.0, (253, 231, 37))]
CSS = """
body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222;
background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.sub{color:#666}.warn{background:#fff4d6;border-left:4px solid #e0a800;padding:6px 10px;margin:4px 0}
table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right;white-space:nowrap}th{background:#f5f5f5;position:sticky;top:0}
td.l,th.l{text-align:left}table.sortable th{cursor:pointer;user-select:none}
table.sortable th:after{content:' \\2195';color:#aaa}
small{color:#777}.ns{color:#999}.sig{font-weight:600}.ref td{background:#f3f7ff;font-style:italic}
.chip{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
svg text{font-family:system-ui,sans-serif}.cell:hover rect{stroke:#000;stroke-width:2}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;padding:4px 8px;border-radius:4px;
font-size:12px;display:none;z-index:9}
.gallery{display:flex;flex-wrap:wrap;gap:14px}.item{border:1px solid #ddd;padding:8px;border-radius:6px;
max-width:560px}.scroll{overflow-x:auto;max-width:100%}
.imgs{display:flex;gap:6px;align-items:flex-end}.imgs figure{margin:0;text-align:center}
.imgs img{width:96px;height:96px;object-fit:contain;border:3px solid transparent;background:#fafafa}
.imgs .gen img{border-color:#555}.imgs .input img{opacity:.8}
.imgs .pick img{border-color:#d62728}.imgs .gt figcaption{font-weight:700}
figcaption{font-size:12px}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var body=t.tBodies[0],rows=Array.from(body.rows),asc=th.dataset.dir!=='asc';
      t.querySelectorAll('th').forEach(function(h){delete h.dataset.dir});th.dataset.dir=asc?'asc':'desc';
      rows.sort(function(a,b){
        var x=a.cells[i].dataset.v,y=b.cells[i].dataset.v;
        if(x===undefined)x=a.cells[i].textContent;if(y===undefined)y=b.cells[i].textContent;
        var nx=parseFloat(x),ny=parseFloat(y),r;
        if(isNaN(nx)&&isNaN(ny))r=x.localeCompare(y);else if(isNaN(nx))r=1;else if(isNaN(ny))r=-1;
        else r=nx-ny;
        return asc?r:-r});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
var tip=document.getElementById('tip');
document.querySelectorAll('[data-tip]').forEach(function(el){
  el.addEventListener('mousemove',function(e){tip.textContent=el.dataset.tip;tip.style.display='block';
    tip.style.left=(e.clientX+12)+'px';tip.style.top=(e.clientY+12)+'px'});
  el.addEventListener('mouseleave',function(){tip.style.display='none'});
});
"""


def esc(x) -> str:
    """Any value as HTML text (names and paths come from servers and files)."""
    return html.escape("" if x is None else str(x), quote=True)


def colour(t: float) -> tuple[int, int, int]:
    """Position t in [0, 1] on the heatmap scale."""
    t = min(1.0, max(0.0, t))
    for (t0, c0), (t1, c1) in zip(STOPS, STOPS[1:], strict=False):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return tuple(round(a + (b - a) * f) for a, b in zip(c0, c1, strict=True))
    return STOPS[-1][1]


def hex_colour(c) -> str:
    """An (r, g, b) colour as #rrggbb."""
    return "#" + "".join(f"{v:02x}" for v in c)


def ink(c) -> str:
    """Black or white text, whichever reads on background c."""
    return "#000" if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 140 else "#fff"


def td(value, text: str, cls: str = "") -> str:
    """A table cell; `value` (data-v) is what the sorting script sorts by."""
    v = "" if value is None else f' data-v="{esc(value)}"'
    c = f' class="{cls}"' if cls else ""
    return f"<td{v}{c}>{text}</td>"
