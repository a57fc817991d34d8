// Compose's live check leaves the files out (they are uploaded once, when the story is queued): when an
// image is chosen, its name goes into a hidden field beside it, so the preview can show the image's place
// and its alt text. This runs before htmx's own "change" handler on the form (the input is reached first).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll('form.compose input[type="file"][name^="image_"]').forEach((input) => {
    input.addEventListener("change", () => {
      const named = document.getElementById(`${input.id}_name`);
      if (named) { named.value = input.files.length ? input.files[0].name : ""; }
    });
  });
});
