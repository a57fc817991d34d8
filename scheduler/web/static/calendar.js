// Drag a story to another day of the calendar: the item's own "move" form is filled with that day at the
// same time of day and submitted, so the server checks the move exactly as when the form is used by hand
// (keyboard users use the form directly).
document.addEventListener("DOMContentLoaded", () => {
  let dragged = null;
  document.querySelectorAll("li.movable[draggable]").forEach((item) => {
    item.addEventListener("dragstart", (event) => {
      dragged = item;
      event.dataTransfer.setData("text/plain", item.dataset.story);
      event.dataTransfer.effectAllowed = "move";
    });
  });
  document.querySelectorAll("li.day").forEach((day) => {
    day.addEventListener("dragover", (event) => { if (dragged) { event.preventDefault(); } });
    day.addEventListener("drop", (event) => {
      if (!dragged) { return; }
      event.preventDefault();
      const time = dragged.dataset.local.slice(11);
      const form = dragged.querySelector("form.move");
      form.querySelector('input[name="at"]').value = `${day.dataset.day}T${time}`;
      dragged = null;
      form.submit();
    });
  });
});
