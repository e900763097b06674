() => {
  // Citation markers in answers are links to "#qa-cite=<id>": a click opens that citation in the
  // source viewer (through the hidden #cite-pick box) instead of following the link.
  document.addEventListener(
    "click",
    (event) => {
      const link = event.target.closest && event.target.closest("a[href*='#qa-cite=']");
      if (!link) return;
      event.preventDefault();
      event.stopPropagation();
      const id = decodeURIComponent(link.getAttribute("href").split("#qa-cite=")[1]);
      const box = document.querySelector("#cite-pick textarea, #cite-pick input");
      if (!box) return;
      box.value = `${id}|${Date.now()}`;
      box.dispatchEvent(new Event("input", { bubbles: true }));
      const viewer = document.querySelector("#viewer");
      if (viewer && window.matchMedia("(max-width: 900px)").matches) viewer.scrollIntoView({ block: "start" });
    },
    true,
  );
  // After a question, show the question and the start of its answer, not the end of the list.
  window.qaShowLastQuestion = () => {
    const asked = document.querySelectorAll("#chat .message-row.user-row, #chat [data-testid='user']");
    const last = asked[asked.length - 1];
    if (!last) return;
    let box = last.parentElement;
    while (box && box.id !== "chat" && box.scrollHeight <= box.clientHeight + 1) box = box.parentElement;
    if (box && box.id !== "chat") {
      box.scrollTop += last.getBoundingClientRect().top - box.getBoundingClientRect().top - 40; // below the chat's own buttons
    }
  };
}
