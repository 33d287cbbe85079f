import { test, expect } from "@playwright/test";
import { adminPage, checkA11y, hydrated, newVerifiedCustomer } from "./helpers";

test("a customer books a slot, staff see it, the customer cancels and the slot is free again", async ({ page, browser }) => {
  await newVerifiedCustomer(page, browser, "Naledi Khumalo");

  // Step 1: the service.
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Book", exact: true }).click();
  await expect(page.getByRole("heading", { name: "Book an appointment" })).toBeVisible();
  await checkA11y(page);
  await page.getByRole("link", { name: "Choose Consultation" }).click();

  // Step 2: the first free time (next week if this one is full).
  await expect(page.getByText("Step 2 of 3")).toBeVisible();
  await checkA11y(page);
  let slot = page.locator("a.slot").first();
  if ((await slot.count()) === 0) {
    await page.getByRole("link", { name: "Later →" }).click();
    slot = page.locator("a.slot").first();
  }
  const slotHref = await slot.getAttribute("href");
  await slot.click();

  // Step 3: the summary with price, deposit and policy, then book.
  await expect(page.getByRole("heading", { name: "Confirm your booking" })).toBeVisible();
  await expect(page.locator("dl.facts")).toContainText("R 350.00");
  await expect(page.locator("dl.facts")).toContainText("Free to move or cancel");
  await checkA11y(page);
  await hydrated(page);
  await page.getByRole("button", { name: "Book this time" }).click();
  await expect(page).toHaveURL(/\/bookings\/\d+$/);
  await expect(page.locator(".page-head .badge")).toHaveText("confirmed");
  const bookingUrl = page.url();

  await page.goto("/bookings");
  await expect(page.locator("li.booking").first()).toContainText("Consultation with Thandi Nkosi");
  await checkA11y(page);

  // Staff (here the admin's week view, which shows every appointment) see it.
  const admin = await adminPage(browser);
  await admin.goto("/staff");
  await expect(admin.getByText("Naledi Khumalo").first()).toBeVisible();
  await checkA11y(admin);

  // The time is no longer offered; cancel, and it is offered again.
  const start = new URL(slotHref!, "http://x").searchParams.get("start");
  await page.goto("/book");
  await page.getByRole("link", { name: "Choose Consultation" }).click();
  const sameSlot = page.locator(`a.slot[href*="start=${start}&"]`);
  await expect(sameSlot).toHaveCount(0);
  await page.goto(bookingUrl);
  await hydrated(page);
  await expect(page.getByText("Nothing is charged.")).toBeVisible();
  await page.getByRole("button", { name: "Cancel booking" }).click();
  await expect(page.locator(".page-head .badge")).toHaveText("cancelled");
  await page.goto("/book");
  await page.getByRole("link", { name: "Choose Consultation" }).click();
  await expect(page.locator(`a.slot[href*="start=${start}&"]`)).toHaveCount(1);
});
