// The Monitor and For-you pages of the dialoop web page. Loaded after app.js, whose helpers
// ($, el, api, getJSON, showError, lineChart) it uses. Text from the server goes in with
// textContent only.
'use strict';

const SENTIMENT_LINES = [['negative', 'Negative', '#c0392b'], ['neutral', 'Neutral', '#7f8c8d'],
                         ['positive', 'Positive', '#27ae60']];

// -- monitor ---------------------------------------------------------------------------------

function bindMonitor() {
  $('#monitor-topic').addEventListener('change', () => loadMonitor());
}

async function loadMonitor() {
  const on = Boolean(state.features.monitor);
  $('#monitor-unavailable').hidden = on;
  $('#monitor-body').hidden = !on;
  if (!on) return;
  showError($('#monitor-error'), null);
  try {
    const [series, alerts] = await Promise.all([getJSON('/api/monitor/series'),
                                                getJSON('/api/monitor/alerts')]);
    const topics = Object.keys(series.topics || {});
    const select = $('#monitor-topic');
    const chosen = topics.includes(select.value) ? select.value : topics[0];
    select.replaceChildren(...topics.map((t) => el('option', { value: t, selected: t === chosen },
                                                   t)));
    renderSeries(chosen ? series.topics[chosen] : [], alerts.filter((a) => a.topic === chosen));
    renderAlerts(alerts);
  } catch (err) { showError($('#monitor-error'), err); }
}

// Items per sentiment in each bucket of one topic; buckets with an alert are marked.
function renderSeries(points, alerts) {
  const holder = $('#monitor-chart');
  if (!points.length) {
    holder.replaceChildren(el('p', { className: 'note' },
      'No items yet: `dialoop monitor ingest FILE` or POST /api/monitor/items.'));
    return;
  }
  const alerted = new Set(alerts.map((a) => a.bucket));
  const labels = points.map((p) => (alerted.has(p.bucket) ? '⚠ ' : '')
                                   + p.bucket.slice(5, 16).replace('T', ' '));
  const top = Math.max(1, ...points.map((p) => Math.max(p.negative, p.neutral, p.positive)));
  lineChart(holder, {
    labels,
    max: top,
    format: (v) => String(Math.round(v)),
    series: SENTIMENT_LINES.map(([key, label, color]) => ({
      label, color, values: points.map((p) => p[key]) })),
  });
}

function renderAlerts(alerts) {
  $('#alert-table tbody').replaceChildren(...(alerts.length ? alerts.map((a) => el('tr', {},
    el('td', {}, a.bucket.slice(0, 16).replace('T', ' ')), el('td', {}, a.topic),
    el('td', {}, a.rule), el('td', {}, a.message)))
    : [el('tr', {}, el('td', { colSpan: 4, className: 'note' }, 'No alerts.'))]));
}

// -- recommendations -----------------------------------------------------------------------

function bindRecommend() {
  $('#recommend-refresh').addEventListener('click', () => loadRecommend());
}

async function loadRecommend() {
  const on = Boolean(state.features.recommend);
  $('#recommend-unavailable').hidden = on;
  $('#recommend-body').hidden = !on;
  if (!on) return;
  showError($('#recommend-error'), null);
  try {
    const found = await (await api('/api/recommend', { method: 'POST', json: { k: 10 } })).json();
    $('#recommend-list').replaceChildren(...(found.length ? found.map(recommendationRow)
      : [el('li', { className: 'note' },
            'Nothing to recommend yet: an admin imports a catalogue (`dialoop recommend import`).')]));
  } catch (err) { showError($('#recommend-error'), err); }
}

function recommendationRow(r) {
  const react = (kind, label, title) => {
    const b = el('button', { type: 'button', title, className: `react-${kind}` }, label);
    b.addEventListener('click', async () => {
      try {
        await api('/api/recommend/events', { method: 'POST',
                                             json: { events: [{ item: r.item, kind }] } });
        await loadRecommend();  // the next list already reflects it
      } catch (err) { showError($('#recommend-error'), err); }
    });
    return b;
  };
  const path = r.path.length === 5
    ? el('div', { className: 'path' }, `${r.path[0]} —${r.path[1]}→ ${r.path[2]} ←${r.path[3]}— ${r.path[4]}`)
    : null;
  return el('li', { className: r.exploring ? 'exploring' : '', dataset: { item: r.item } },
    el('div', { className: 'title' }, r.title),
    el('div', { className: 'reason' }, r.reason), path,
    el('div', { className: 'reactions' }, react('like', '👍', 'I like this'),
       react('dislike', '👎', 'Not for me')));
}
