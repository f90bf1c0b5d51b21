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
      var labels = data.mastery.labels;
      var noData = mastery.dataset.noData;
      // One row per concept, tall enough that no label is skipped: every bar sits next
      // to its own concept's name. (Set through the CSSOM, which the CSP allows.)
      mastery.parentNode.style.height = (labels.length * 32 + 48) + "px";
      // Where the table says "Not enough data" there is no bar, and the chart says so.
      var noDataLabels = {
        id: "noDataLabels",
        afterDatasetsDraw: function (chart) {
          var ctx = chart.ctx;
          var y = chart.scales.y;
          var x = chart.scales.x;
          ctx.save();
          ctx.fillStyle = "#57606a";
          ctx.font = "italic 12px system-ui, sans-serif";
          ctx.textBaseline = "middle";
          data.mastery.values.forEach(function (value, index) {
            if (value === null) ctx.fillText(noData, x.left + 6, y.getPixelForTick(index));
          });
          ctx.restore();
        },
      };
      new Chart(mastery, {
        type: "bar",
        data: {
          labels: labels,
          datasets: [{
            label: mastery.dataset.label,
            data: data.mastery.values,
            backgroundColor: "#0b5cad",
          }],
        },
        plugins: [noDataLabels],
        options: {
          indexAxis: "y",
          animation: animation,
          maintainAspectRatio: false,
          scales: {
            x: { min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } } },
            y: {
              ticks: {
                autoSkip: false,
                callback: function (value, index) {
                  var name = labels[index];
                  var room = window.innerWidth < 600 ? 18 : 40;
                  return name.length > room ? name.slice(0, room - 1) + "…" : name;
                },
              },
            },
          },
          plugins: {
            legend: { display: false },
            tooltip: {
              callbacks: {
                title: function (items) { return labels[items[0].dataIndex]; },
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
