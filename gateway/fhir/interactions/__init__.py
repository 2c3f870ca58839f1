"""One module per FHIR RESTful interaction (https://hl7.org/fhir/R4/http.html)."""
