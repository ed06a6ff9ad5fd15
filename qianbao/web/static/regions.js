// Qianbao: the address form's city list follows the chosen state.
// Without this script the city list shows every city, grouped by state, and the
// server checks that the city belongs to the state.
"use strict";

function setUpRegionPicker() {
  const state = document.getElementById("state");
  const city = document.getElementById("city");
  if (!state || !city) return;

  const placeholder = city.querySelector("option[value='']");
  const citiesOf = new Map();
  for (const group of city.querySelectorAll("optgroup")) {
    citiesOf.set(group.dataset.state, Array.from(group.querySelectorAll("option")));
  }
  const noScriptHint = document.getElementById("city-hint");
  if (noScriptHint) noScriptHint.hidden = true;

  const showCitiesOfState = () => {
    const chosen = city.value;
    const options = citiesOf.get(state.value) || [];
    city.replaceChildren(...(placeholder ? [placeholder] : []), ...options);
    const keep = options.find((option) => option.value === chosen);
    if (keep) {
      keep.selected = true;
    } else if (options.length === 1) {
      // A municipality, Hong Kong, Macau, Taiwan or Overseas: its one city is itself.
      options[0].selected = true;
    } else if (placeholder) {
      placeholder.selected = true;
    }
    city.disabled = options.length === 0;
  };

  state.addEventListener("change", showCitiesOfState);
  showCitiesOfState();
}

document.addEventListener("DOMContentLoaded", setUpRegionPicker);
