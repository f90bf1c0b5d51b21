// Draws the progress charts from the JSON that the page embeds (json_script); the same
// numbers are always in a table next to each chart, so the chart is an extra, not the data.
(function () {
  "use strict";

  function reducedMotion() {
    return document.body.classList.contains("pref-reduced-motion") ||
      window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  function draw() {
    var source = document.getElementById("progress-data");
    if (!source || typeof Chart === "undefined") return;
    var data = JSON.parse(source.textContent);
    var animation = reducedMotion() ? false : undefined;

    var mastery = document.getElementById("mastery-chart");
    if (mastery) {
      var notes = data.mastery.notes;
      new Chart(mastery, {
        type: "bar",
        data: {
          labels: data.mastery.labels,
          datasets: [{
            label: mastery.dataset.label,
            data: data.mastery.values.map(function (v) { return v === null ? 0 : v; }),
            backgroundColor: "#0b5cad",
          }],
        },
        options: {
          indexAxis: "y",
          animation: animation,
          maintainAspectRatio: false,
          scales: { x: { min: 0, max: 100 } },
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                label: function (ctx) {
                  var value = data.mastery.values[ctx.dataIndex];
                  return (value === null ? "—" : value + "%") + " · " + notes[ctx.dataIndex];
                },
              },
            },
          },
        },
      });
    }

    var activity = document.getElementById("activity-chart");
    if (activity) {
      new Chart(activity, {
        type: "bar",
        data: {
          labels: data.activity.labels,
          datasets: [
            { label: activity.dataset.labelAnswers, data: data.activity.answers, backgroundColor: "#8cb4e0" },
            { label: activity.dataset.labelCorrect, data: data.activity.correct, backgroundColor: "#1a7f37" },
          ],
        },
        options: {
          animation: animation,
          maintainAspectRatio: false,
          scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        },
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
