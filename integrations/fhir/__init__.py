"""Forms and answers as FHIR R4 resources (FORM-5), built and read through fhir.resources: its
R4B models, whose Questionnaire and QuestionnaireResponse are R4's."""
