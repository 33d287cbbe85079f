import { test, expect } from "@playwright/test";
import { adminPage, checkA11y } from "./helpers";

test("an admin opens the integration map, runs every connection test, and exports it as Markdown", async ({ browser }) => {
  const page = await adminPage(browser);
  // Every stand-in in normal service (another test may have left one failing).
  await page.goto("/admin/standins");
  await page.getByLabel("CRM stand-in").selectOption("normal");
  await page.locator("form", { has: page.getByLabel("CRM stand-in") }).getByRole("button", { name: "Apply" }).click();
  await expect(page.getByTestId("crm-state")).toContainText("normal");
  await page.goto("/admin/integrations");
  await page.getByRole("link", { name: "Integration map" }).click();
  await expect(page.getByRole("heading", { name: "Integration map", level: 1 })).toBeVisible();
  await expect(page.locator("section.map-row").first()).toContainText("local Stripe stand-in");
  await checkA11y(page);

  const buttons = page.getByRole("button", { name: /^Test connection: / });
  const n = await buttons.count();
  expect(n).toBeGreaterThanOrEqual(4);
  for (let i = 0; i < n; i++) {
    const label = (await buttons.nth(i).textContent()) ?? "";
    await buttons.nth(i).click();
    const key = await buttons.nth(i).locator("xpath=ancestor::form//input[@name='key']").getAttribute("value");
    await expect(page.getByTestId(`test-${key}`)).toContainText("Connection test passed", { timeout: 15_000 });
    expect(label).toContain("Test connection");
  }

  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("link", { name: "Export as Markdown" }).click(),
  ]);
  expect(download.suggestedFilename()).toBe("integration-map.md");
  const path = await download.path();
  const fs = await import("fs");
  const md = fs.readFileSync(path!, "utf8");
  expect(md).toContain("# Integration map");
  expect(md).toContain("## Payments (Stripe)");

  await page.getByRole("link", { name: "Runbook: Payments (Stripe)" }).click();
  await expect(page.locator("pre.runbook")).toContainText("Rotate the secrets without downtime");
  await checkA11y(page);

  await page.goto("/admin/audit?action=integration.");
  await expect(page.locator("tbody")).toContainText("integration.test");
});
