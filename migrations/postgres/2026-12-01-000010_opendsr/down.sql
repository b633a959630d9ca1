DROP TABLE opendsr_identity;
DROP TABLE opendsr_callbacks;
DROP TABLE opendsr_requests;
