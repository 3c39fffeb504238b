// The check-in page's camera: the vendored qr-scanner decodes a ticket's QR code and the
// page submits it in the code form, which works on its own without this script.
import QrScanner from "./vendor/qr-scanner/qr-scanner.min.js";

const form = document.getElementById("checkin-form");
const video = document.getElementById("scanner-video");
const start = document.getElementById("scanner-start");
const status = document.getElementById("scanner-status");
// The code this page answered, most likely still in front of the camera.
const answered = document.querySelector("[data-scanner]")?.dataset.answered || "";

async function startScanning() {
  start.hidden = true;
  // Shown before the scanner takes it: it keeps a hidden video playing by restyling it.
  video.hidden = false;
  const scanner = new QrScanner(
    video,
    (result) => {
      if (result.data === answered) return;
      // One code, one submission: the next scan comes from the answer's page.
      scanner.stop();
      form.elements.code.value = result.data;
      status.textContent = "Checking…";
      form.requestSubmit();
    },
    { preferredCamera: "environment", returnDetailedScanResult: true, maxScansPerSecond: 10 },
  );
  try {
    await scanner.start();
    status.textContent = "Point the camera at the ticket's QR code.";
  } catch (error) {
    video.hidden = true;
    start.hidden = false;
    status.textContent = `The camera could not be opened (${error}). Type the code instead.`;
  }
}

async function cameraAllowed() {
  // A door that allowed the camera once keeps scanning from page to page.
  try {
    return (await navigator.permissions.query({ name: "camera" })).state === "granted";
  } catch {
    return false;
  }
}

if (form && video && start && navigator.mediaDevices) {
  start.addEventListener("click", startScanning);
  if (await cameraAllowed()) {
    startScanning();
  } else {
    start.hidden = false;
  }
}
