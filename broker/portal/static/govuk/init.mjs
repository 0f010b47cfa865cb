// Part of the portal, not of GOV.UK Frontend: starts its components (error summary focus, menus, buttons).
// Every page works without it.
import { initAll } from './govuk-frontend.min.js'
initAll()
