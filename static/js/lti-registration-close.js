// LTI Dynamic Registration: tell the LMS the registration is over, so it closes the frame
// or window it opened us in and shows its own review screen.
document.querySelectorAll("[data-lti-registration-close]").forEach((button) => {
  button.addEventListener("click", () => {
    const lms = window.opener || (window.parent !== window ? window.parent : null);
    if (lms) {
      lms.postMessage({ subject: "org.imsglobal.lti.close" }, "*");
    }
  });
});
