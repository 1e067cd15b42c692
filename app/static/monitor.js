/* exhale: "waiting for the reading". While the test form is open, ask the server every two
   seconds for the chosen monitor's results not yet recorded, and put a new one in the list,
   chosen, as soon as the bridge has posted it. Without JavaScript the midwife reloads the page
   or types the number. Same origin only: the session cookie authenticates the request. */
(function () {
  "use strict";
  // Typing a number means the reading is typed: choose that for her.
  var typed = document.querySelector("input[name=how][value=typed]");
  var ppm = document.getElementById("co_ppm");
  if (typed && ppm) {
    ppm.addEventListener("input", function () {
      if (ppm.value.trim() !== "") { typed.checked = true; }
    });
  }
  var status = document.querySelector("[data-monitor-poll]");
  var list = document.getElementById("monitor-results");
  if (!status || !list || !window.fetch) { return; }
  var device = status.getAttribute("data-device");
  var url = status.getAttribute("data-url");
  var intervalMs = 2000;
  var giveUpAfterMs = 20 * 60 * 1000;
  var started = Date.now();
  var known = {};
  Array.prototype.forEach.call(list.querySelectorAll("input[name=device_reading_id]"), function (input) {
    known[input.value] = true;
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-no-js]"), function (element) {
    element.hidden = true;
  });
  if (!list.querySelector("input")) { status.classList.add("waiting--waiting"); }

  function time(iso) {
    return new Date(iso).toLocaleString("en-GB", {
      day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
      timeZone: "Europe/London"
    });
  }

  function add(result) {
    var id = String(result.id);
    if (known[id]) { return; }
    known[id] = true;
    var item = document.createElement("div");
    item.className = "radios__item";
    var input = document.createElement("input");
    input.className = "radios__input";
    input.type = "radio";
    input.name = "device_reading_id";
    input.value = id;
    input.id = "device_reading_id-" + id;
    var label = document.createElement("label");
    label.className = "radios__label";
    label.htmlFor = input.id;
    var strong = document.createElement("strong");
    strong.textContent = result.co_ppm + " ppm";
    label.appendChild(strong);
    label.appendChild(document.createTextNode(" at " + time(result.measured_at)));
    item.appendChild(input);
    item.appendChild(label);
    list.insertBefore(item, list.firstChild);
    input.checked = true;
    var fromMonitor = document.getElementById("how");
    if (fromMonitor && fromMonitor.value === "monitor") { fromMonitor.checked = true; }
    status.classList.remove("waiting--waiting");
    status.classList.add("waiting--done");
    status.textContent = "Reading received: " + result.co_ppm + " ppm at " + time(result.measured_at) +
      ". Check it is hers, then save the test.";
  }

  function poll() {
    var query = "?device=" + encodeURIComponent(device) + "&unassigned=true&limit=10";
    fetch(url + query, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.status === 401 || response.status === 403) {
          status.textContent = "Your session has ended. Reload the page to log in again.";
          return null;
        }
        return response.ok ? response.json() : [];
      })
      .then(function (results) {
        if (results === null) { return; }
        results.slice().reverse().forEach(add);
        schedule();
      })
      .catch(schedule);
  }

  function schedule() {
    if (Date.now() - started < giveUpAfterMs) {
      window.setTimeout(poll, intervalMs);
    } else {
      status.textContent = "Stopped waiting for the monitor. Reload the page to look again.";
    }
  }

  poll();
})();
