// The latency chart: per workload, one row per path with every run as a dot
// and a box (p25-p75, whiskers p1-p99, median bar) on a shared log-scale
// axis, so a glance shows both how far apart the paths are and how steady.
import { percentile } from './measure.js';
import type { BenchResults, LatencyCell } from './results.js';

const WIDTH = 980;
const LABEL_WIDTH = 130;
const VALUE_WIDTH = 150;
const PLOT_LEFT = LABEL_WIDTH + 20;
const PLOT_RIGHT = WIDTH - VALUE_WIDTH - 10;
const ROW_HEIGHT = 24;
const PANEL_HEADER = 30;
const PANEL_GAP = 12;
const TOP = 84;

const COLOURS: Record<string, string> = {
  'lua5.4': '#1c7ed6',
  'lua5.3': '#4dabf7',
  'warmlua-cold': '#868e96',
  warmlua: '#e8590c',
  'warmlua-js': '#ae3ec9',
};

const escape = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (v: number): string => v.toFixed(1);

function formatMs(v: number): string {
  if (v >= 1000) return `${+(v / 1000).toFixed(2)} s`;
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ms`;
}

function formatRatio(v: number): string {
  return `${v >= 10 ? v.toFixed(0) : v.toFixed(v >= 1 ? 1 : 2)}×`;
}

/** Maps milliseconds onto the plot, log scale, a little wider than the data;
 * ticks at 1, 2 and 5 of each decade inside it. */
function logScale(cells: LatencyCell[]): { x: (ms: number) => number; ticks: number[] } {
  const all = cells.flatMap((c) => c.timesMs ?? []);
  const low = Math.log10(Math.min(...all) * 0.7);
  const high = Math.log10(Math.max(...all) * 1.3);
  const x = (ms: number) => PLOT_LEFT + ((Math.log10(ms) - low) / (high - low)) * (PLOT_RIGHT - PLOT_LEFT);
  const ticks: number[] = [];
  for (let d = Math.floor(low); d <= Math.ceil(high); d++) {
    for (const m of [1, 2, 5]) {
      const t = m * 10 ** d;
      if (Math.log10(t) >= low && Math.log10(t) <= high) ticks.push(t);
    }
  }
  return { x, ticks };
}

const tickLabel = (ms: number): string => (ms >= 1000 ? `${+(ms / 1000).toPrecision(3)} s` : `${+ms.toPrecision(3)} ms`);

/** Deterministic vertical spread for the dots, so the chart is the same for the same figures. */
const jitter = (i: number): number => ((i * 0.618033988749) % 1) - 0.5;

function row(cell: LatencyCell, y: number, x: (ms: number) => number): string[] {
  const colour = COLOURS[cell.path] ?? '#495057';
  const out = [
    `<text x="${LABEL_WIDTH}" y="${num(y + 4)}" text-anchor="end" class="path">${escape(cell.path)}</text>`,
  ];
  if (!cell.timesMs || !cell.stats) {
    out.push(`<text x="${PLOT_LEFT}" y="${num(y + 4)}" class="failed">failed: ${escape((cell.error ?? '').slice(0, 90))}</text>`);
    return out;
  }
  const sorted = [...cell.timesMs].sort((a, b) => a - b);
  const [p1, p25, p75, p99] = [0.01, 0.25, 0.75, 0.99].map((p) => percentile(sorted, p));
  const h = ROW_HEIGHT - 8;
  out.push(`<g fill="${colour}" fill-opacity="0.28">`);
  cell.timesMs.forEach((t, i) => out.push(`<circle cx="${num(x(t))}" cy="${num(y + jitter(i) * h)}" r="2"/>`));
  out.push('</g>');
  out.push(
    `<line x1="${num(x(p1))}" x2="${num(x(p99))}" y1="${y}" y2="${y}" stroke="${colour}" stroke-width="1.5"/>`,
    `<rect x="${num(x(p25))}" y="${num(y - h / 4)}" width="${num(Math.max(1, x(p75) - x(p25)))}" height="${num(h / 2)}" ` +
      `fill="${colour}" fill-opacity="0.85" rx="2"/>`,
    `<line x1="${num(x(cell.stats.p50))}" x2="${num(x(cell.stats.p50))}" y1="${num(y - h / 2)}" y2="${num(y + h / 2)}" ` +
      `stroke="#212529" stroke-width="2.5"/>`,
  );
  out.push(`<text x="${PLOT_RIGHT + 78}" y="${num(y + 4)}" text-anchor="end" class="median">${formatMs(cell.stats.p50)}</text>`);
  if (cell.ratioToBaseline !== undefined) {
    out.push(`<text x="${PLOT_RIGHT + 90}" y="${num(y + 4)}" class="ratio">${formatRatio(cell.ratioToBaseline)}</text>`);
  }
  return out;
}

function footer(results: BenchResults): string {
  const c8 = results.throughput.find((t) => t.concurrency === 8);
  const parts = [];
  if (c8) parts.push(`${c8.runsPerSecond.toFixed(0)} runs/s at concurrency 8 (${c8.failures} failures)`);
  if (!('error' in results.memory)) {
    const m = results.memory;
    parts.push(`server RSS ${m.serverRssMiB.toFixed(0)} MiB`, `${m.ussMiB.mean.toFixed(1)} MiB USS per idle runner`);
  }
  const passed = results.targets.filter((t) => t.pass === true).length;
  const judged = results.targets.filter((t) => t.pass !== null).length;
  parts.push(`${passed} of ${judged} targets met`);
  return parts.join('  ·  ');
}

export function renderSvg(results: BenchResults): string {
  const measured = results.latency.filter((c) => c.timesMs);
  const { x, ticks } = logScale(measured);
  const backgrounds: string[] = [];
  const body: string[] = [];
  let y = TOP;
  results.workloads.forEach((workload, index) => {
    const height = PANEL_HEADER + workload.paths.length * ROW_HEIGHT + 6;
    if (index % 2 === 0) backgrounds.push(`<rect x="0" y="${y - 4}" width="${WIDTH}" height="${height + 8}" fill="#f8f9fa"/>`);
    body.push(
      `<text x="20" y="${y + 17}" class="workload">${escape(workload.name)}` +
        `<tspan dx="10" class="description">${escape(workload.description)}</tspan></text>`,
      `<text x="${PLOT_RIGHT + 90}" y="${y + 17}" class="description">× ${escape(workload.baseline)}</text>`,
    );
    // The baseline's median, as a guide through the panel.
    const baseline = results.latency.find((c) => c.workload === workload.name && c.path === workload.baseline);
    if (baseline?.stats) {
      const bx = num(x(baseline.stats.p50));
      body.push(
        `<line x1="${bx}" x2="${bx}" y1="${y + PANEL_HEADER - 4}" y2="${y + height - 4}" stroke="${COLOURS[workload.baseline]}" stroke-dasharray="3 3"/>`,
      );
    }
    workload.paths.forEach((p, i) => {
      const cell = results.latency.find((c) => c.workload === workload.name && c.path === p);
      if (cell) body.push(...row(cell, y + PANEL_HEADER + i * ROW_HEIGHT + ROW_HEIGHT / 2, x));
    });
    y += height + PANEL_GAP;
  });
  const plotBottom = y - PANEL_GAP;
  const grid = ticks.map((t) => {
    const major = Math.log10(t) % 1 === 0;
    const line = `<line x1="${num(x(t))}" x2="${num(x(t))}" y1="${TOP - 6}" y2="${plotBottom}" stroke="${major ? '#ced4da' : '#e9ecef'}"/>`;
    const label = `<text x="${num(x(t))}" y="${plotBottom + 16}" text-anchor="middle" class="${major ? 'tick' : 'minor'}">${tickLabel(t)}</text>`;
    return line + label;
  });
  const m = results.machine;
  const date = m.date.slice(0, 16).replace('T', ' ');
  const height = plotBottom + 62;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    '<style>',
    'text { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; fill: #212529; }',
    '.title { font-size: 20px; font-weight: 700; } .subtitle { font-size: 12px; fill: #495057; }',
    '.workload { font-size: 14px; font-weight: 700; } .description { font-weight: 400; fill: #495057; font-size: 12px; }',
    '.path { font-size: 12px; } .tick { font-size: 11px; fill: #495057; } .minor { font-size: 9px; fill: #adb5bd; }',
    '.median { font-size: 12px; font-weight: 700; } .ratio { font-size: 12px; fill: #495057; }',
    '.failed { font-size: 11px; fill: #c92a2a; } .footer { font-size: 12px; fill: #343a40; }',
    '</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="20" y="32" class="title">warmlua: time from spawn to exit</text>`,
    `<text x="20" y="54" class="subtitle">${escape(
      `${date} UTC · ${m.cpuModel}, ${m.cores} cores · node ${m.node} · ` +
        `${m.hyperfine ? `hyperfine ${m.hyperfine}` : 'timed by node'}${results.quick ? ' · quick run' : ''}` +
        (m.otherCpuPercent !== undefined && m.otherCpuPercent >= 5 ? ` · other processes used ${m.otherCpuPercent.toFixed(0)}% CPU` : ''),
    )}</text>`,
    `<text x="20" y="72" class="subtitle">${escape(
      'each dot is one run; box p25-p75, line p1-p99, black bar the median (at right, with its ratio to lua); dashed: lua median; log scale',
    )}</text>`,
    ...backgrounds,
    ...grid,
    ...body,
    `<text x="20" y="${plotBottom + 44}" class="footer">${escape(footer(results))}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
